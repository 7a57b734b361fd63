"""Lab volumes: one btrfs filesystem per site on a loop device (stands in for a SAN LUN).

Entry points (used by `sitectl lab up/down`)::

    create_site_volume(state_dir, site, size_mb=256) -> SiteVolume(image, loopdev, mountpoint)
    destroy_site_volume(state_dir, site, purge=False) -> None
        purge also deletes the image; once the last site is purged the whole
        ``<state_dir>/volumes/`` goes, mirror state files included.

Layout under ``<state_dir>/volumes/``: ``<site>.img`` (sparse image) and ``<site>/`` where
the filesystem's top level (the "pool") is mounted. Mirror relationships keep their
subvolumes in the pool: the live ``<subvol>`` and read-only snapshots ``snaps/<subvol>@N``.

Both functions are idempotent and tolerate a half-done earlier run: the loop device is
found again from the image (`losetup -j`), a blank device is formatted but a formatted
one never is, and teardown unmounts every mount of the site's loop devices (the pool and
any service path) before detaching them.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import NamedTuple

from orchestrator.errors import Failed
from orchestrator.storage import btrfs

SNAPS_DIR = "snaps"
RETIRED_DIR = "retired"
SALVAGE_DIR = "salvage"  # read-only copies of an old site's live subvolume (salvage)


class SiteVolume(NamedTuple):
    image: Path
    loopdev: str
    mountpoint: Path  # the pool: the filesystem's top level


def volume_paths(state_dir: Path, site: str) -> tuple[Path, Path]:
    """(image, pool mount point) of `site` under `state_dir`."""
    base = Path(state_dir).resolve() / "volumes"
    return base / f"{site}.img", base / site


def create_site_volume(state_dir: Path, site: str, size_mb: int = 256) -> SiteVolume:
    """Create (or find again) the site's image, loop device, btrfs filesystem and pool mount."""
    if size_mb < 128:
        raise Failed(f"{site}: btrfs needs at least 128 MB on a loop device, got {size_mb}")
    image, pool = volume_paths(state_dir, site)
    image.parent.mkdir(parents=True, exist_ok=True)
    if not image.exists():
        with image.open("wb") as fh:
            fh.truncate(size_mb * 1024 * 1024)  # sparse: costs nothing until written

    devices = btrfs.loop_devices_for(image)
    loopdev = devices[0] if devices else btrfs.loop_attach(image)

    kind = btrfs.fs_type(loopdev)
    if kind is None:
        btrfs.mkfs(loopdev, label=f"lab-{site}")
    elif kind != "btrfs":
        raise Failed(
            f"{image} holds a {kind} filesystem, not btrfs: remove it or pick another state dir"
        )

    current = btrfs.mount_at(pool)
    if current is None:
        btrfs.mount(loopdev, pool)
    elif current.source not in [*devices, loopdev]:
        raise Failed(f"{pool} is already mounted from {current.source}, not {loopdev}")

    for sub in (SNAPS_DIR, RETIRED_DIR):
        (pool / sub).mkdir(exist_ok=True)
    return SiteVolume(image, loopdev, pool)


def destroy_site_volume(state_dir: Path, site: str, purge: bool = False) -> None:
    """Unmount everything on the site's loop devices, detach them; with purge, delete the image.

    Raises Unavailable if a mount is busy (a process still uses the mail store): stop the
    site's processes first.
    """
    image, pool = volume_paths(state_dir, site)
    devices = btrfs.loop_devices_for(image) if image.exists() else []
    # Newest mounts first, so a mount stacked on another comes off before it.
    for entry in reversed(btrfs.mounts()):
        if entry.source in devices or entry.target == str(pool):
            btrfs.umount(Path(entry.target))
    for device in devices:
        btrfs.loop_detach(device)
    if purge:
        image.unlink(missing_ok=True)
        if pool.exists() and btrfs.mount_at(pool) is None:
            shutil.rmtree(pool)
        # Once no site's image is left, mirror state and config files would only describe
        # snapshots that no longer exist (initialize() refuses them): remove them too.
        base = image.parent
        mounted = any(m.target.startswith(f"{base}/") for m in btrfs.mounts())
        if base.exists() and not any(base.glob("*.img")) and not mounted:
            shutil.rmtree(base)
