"""Lab volume provisioning on real loop devices: idempotent, and teardown leaves nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.storage import btrfs, create_site_volume, destroy_site_volume

from .conftest import loops_for, mounts_under

pytestmark = pytest.mark.lab


def test_create_is_idempotent(state_dir: Path) -> None:
    first = create_site_volume(state_dir, "dc1", 160)
    (first.mountpoint / "marker").write_text("kept")
    second = create_site_volume(state_dir, "dc1", 160)
    assert second == first
    assert len(btrfs.loop_devices_for(first.image)) == 1
    assert (second.mountpoint / "marker").read_text() == "kept"  # never reformatted


def test_teardown_unmounts_and_detaches_everything(state_dir: Path) -> None:
    vol = create_site_volume(state_dir, "dc1", 160)
    btrfs.subvolume_create(vol.mountpoint / "data")
    btrfs.mount(vol.loopdev, state_dir / "dc1" / "mail", subvol="data")  # a service mount

    destroy_site_volume(state_dir, "dc1")
    assert mounts_under(state_dir) == []
    assert loops_for(vol.image) == ""
    assert vol.loopdev not in btrfs.run(["losetup", "-a"])
    destroy_site_volume(state_dir, "dc1")  # a second teardown is a no-op


def test_teardown_after_a_crashed_setup_detaches_every_loop_device(state_dir: Path) -> None:
    vol = create_site_volume(state_dir, "dc1", 160)
    extra = btrfs.loop_attach(vol.image)  # as if an earlier `up` died after losetup
    assert len(btrfs.loop_devices_for(vol.image)) == 2

    destroy_site_volume(state_dir, "dc1")
    assert loops_for(vol.image) == ""
    assert extra not in btrfs.run(["losetup", "-a"])


def test_recreate_after_teardown_keeps_the_data(state_dir: Path) -> None:
    vol = create_site_volume(state_dir, "dc1", 160)
    (vol.mountpoint / "marker").write_text("kept")
    destroy_site_volume(state_dir, "dc1")
    again = create_site_volume(state_dir, "dc1", 160)
    assert (again.mountpoint / "marker").read_text() == "kept"


def test_purging_every_site_removes_the_volumes_dir(state_dir: Path) -> None:
    for site in ("dc1", "dc2"):
        create_site_volume(state_dir, site, 160)
    (state_dir / "volumes" / "mirror-mail.json").write_text("{}")
    destroy_site_volume(state_dir, "dc1", purge=True)
    assert (state_dir / "volumes" / "mirror-mail.json").exists()  # dc2 still there
    destroy_site_volume(state_dir, "dc2", purge=True)
    assert not (state_dir / "volumes").exists()
