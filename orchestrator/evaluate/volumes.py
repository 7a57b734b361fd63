"""Every volume a move mounts has its device on the target site, per driver.

btrfs (the lab's): the target site's pool is mounted where sitectl runs (the driver's
mounts are this machine's, engine/steps/volumes.py) and its device is there. NetApp and
`command` volumes cannot be looked at without the array or the operator's own commands
acting: said as a note, never counted against the move (their mirror's state is in the
readiness figures). The directory the mount point goes in is checked on the hosts
(evaluate/hosts.py).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config.model import BtrfsVolume, Topology, Volume
from orchestrator.errors import SitectlError
from orchestrator.evaluate.findings import Finding, note, ok, problem

CHECK = "mount"


def judge_btrfs(volume: str, site: str, pool: str, device: str | None, present: bool) -> Finding:
    """A btrfs volume's finding from its pool's mount (`device` None: not mounted) (pure)."""
    subject = f"{volume} at {site}"
    if device is None:
        return problem(
            CHECK,
            subject,
            f"{site}'s pool {pool} is not mounted here, so there is nothing to mount",
        )
    if not present:
        return problem(CHECK, subject, f"{site}'s pool {pool} is mounted from {device}, now gone")
    return ok(CHECK, subject, f"{site}'s pool {pool} is mounted from {device}")


def check_volume(topo: Topology, vol: Volume, site: str) -> Finding:
    if not isinstance(vol, BtrfsVolume):
        return note(
            CHECK,
            f"{vol.name} at {site}",
            f"a {vol.driver} volume's device cannot be looked at without the array or "
            "its commands acting; its mirror's state is in the readiness figures",
        )
    from orchestrator.storage.btrfs import mount_at
    from orchestrator.storage.btrfs_mirror import MirrorConfig

    if vol.mirror_config is None:
        return problem(CHECK, f"{vol.name} at {site}", "a btrfs volume needs mirror_config")
    try:
        paths = MirrorConfig.load(topo.resolve(vol.mirror_config)).sites[site]
    except (SitectlError, OSError, KeyError, ValueError) as exc:
        return problem(
            CHECK, f"{vol.name} at {site}", f"its mirror_config cannot be read for {site}: {exc}"
        )
    entry = mount_at(paths.pool)
    device = entry.source if entry is not None else None
    return judge_btrfs(
        vol.name, site, str(paths.pool), device, bool(device and Path(device).exists())
    )


def check_volumes(topo: Topology, site: str) -> list[Finding]:
    return [check_volume(topo, vol, site) for vol in topo.volumes]
