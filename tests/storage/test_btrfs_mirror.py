"""BtrfsMirror on real loop devices: transfers, quiesce, break, reverse, idempotency."""

from __future__ import annotations

import os

import pytest

from orchestrator.errors import Failed
from orchestrator.storage import BtrfsMirror, MirrorConfig, MirrorState, btrfs

from .conftest import Lab

pytestmark = pytest.mark.lab


def newest_snapshot(lab: Lab) -> str:
    status = lab.mirror().status()
    assert status.last_snapshot is not None
    return status.last_snapshot


def test_initialize_is_a_baseline_and_idempotent(lab: Lab) -> None:
    first = lab.mirror().status()
    assert (first.state, first.source, first.destination) == (MirrorState.MIRRORED, "dc1", "dc2")
    assert first.last_snapshot == "data@1"
    assert btrfs.subvolume_show(lab.snap("dc2", "data@1")).received_uuid is not None
    assert lab.mirror().initialize() == first
    assert btrfs.mount_at(lab.service("dc1")) is not None
    assert not (lab.config.sites["dc2"].pool / "data").exists()  # standby has no live volume


def test_file_written_at_source_appears_at_destination(lab: Lab) -> None:
    (lab.service("dc1") / "msg1").write_text("hello")
    status = lab.mirror().update()
    assert status.last_snapshot == "data@2"
    assert (lab.snap("dc2", "data@2") / "msg1").read_text() == "hello"
    assert status.healthy and status.last_error is None
    # Incremental: the received snapshot was created as a child of the previous one.
    received = btrfs.subvolume_show(lab.snap("dc2", "data@2"))
    assert received.parent_uuid == btrfs.subvolume_show(lab.snap("dc2", "data@1")).uuid


def test_scheduled_transfer_prunes_old_snapshots(lab: Lab) -> None:
    for i in range(5):
        (lab.service("dc1") / f"m{i}").write_text(str(i))
        assert lab.mirror().scheduled_transfer().startswith("transferred data@")
    for site in ("dc1", "dc2"):
        names = sorted(p.name for p in (lab.config.sites[site].pool / "snaps").iterdir())
        assert names == ["data@4", "data@5", "data@6"]
    assert (lab.snap("dc2", "data@6") / "m4").read_text() == "4"


def test_lag_grows_while_quiesced_and_no_transfer_runs(lab: Lab) -> None:
    assert lab.mirror().status().lag_seconds == 0
    lab.mirror().quiesce()
    lab.clock.now += 100
    assert lab.mirror().scheduled_transfer().startswith("skipped")
    status = lab.mirror().status()
    assert status.state is MirrorState.QUIESCED
    assert status.lag_seconds == 100
    assert status.last_snapshot == "data@1"

    lab.mirror().resume()
    lab.clock.now += 1
    assert lab.mirror().status().healthy is False  # mirrored, 101 s behind, max 30 s
    lab.mirror().scheduled_transfer()
    assert lab.mirror().status().lag_seconds == 0
    assert lab.mirror().status().healthy


def switchover_to_dc2(lab: Lab) -> None:
    m = lab.mirror()
    m.quiesce()
    m.unmount("dc1")
    m.update()  # final sync after the application stopped writing
    m.break_()
    m.mount("dc2")


def test_break_makes_the_destination_writable_and_mountable(lab: Lab) -> None:
    (lab.service("dc1") / "before").write_text("synced")
    switchover_to_dc2(lab)

    status = lab.mirror().status()
    assert status.state is MirrorState.BROKEN and status.writable_site == "dc2"
    assert btrfs.mount_at(lab.service("dc1")) is None
    assert btrfs.mount_at(lab.service("dc2")) is not None
    assert (lab.service("dc2") / "before").read_text() == "synced"
    (lab.service("dc2") / "after").write_text("written at dc2")  # writable
    with pytest.raises(Failed, match="split the brain"):
        lab.mirror().mount("dc1")


def test_reverse_mirrors_back_incrementally_and_fails_back(lab: Lab) -> None:
    switchover_to_dc2(lab)
    (lab.service("dc2") / "at-dc2").write_text("new mail")
    common = newest_snapshot(lab)

    status = lab.mirror().reverse()
    assert (status.state, status.source, status.destination) == (MirrorState.MIRRORED, "dc2", "dc1")
    sent = newest_snapshot(lab)
    assert (lab.snap("dc1", sent) / "at-dc2").read_text() == "new mail"
    # Incremental from the common snapshot: dc1 received a child of its own `common`.
    assert (
        btrfs.subvolume_show(lab.snap("dc1", sent)).parent_uuid
        == btrfs.subvolume_show(lab.snap("dc1", common)).uuid
    )
    # The old live volume was set aside, not deleted.
    assert [p.name.split("-")[0] for p in (lab.config.sites["dc1"].pool / "retired").iterdir()] == [
        f"data@{common.split('@')[1]}"
    ]

    # Fail back: dc1 active again, and reverse once more to protect it.
    m = lab.mirror()
    m.unmount("dc2")
    m.update()
    m.break_()
    m.mount("dc1")
    assert (lab.service("dc1") / "at-dc2").read_text() == "new mail"
    status = m.reverse()
    assert (status.source, status.destination) == ("dc1", "dc2")
    (lab.service("dc1") / "after-failback").write_text("x")
    m.update()
    assert (lab.snap("dc2", newest_snapshot(lab)) / "after-failback").exists()


def test_every_operation_is_idempotent(lab: Lab) -> None:
    m = lab.mirror()
    assert m.resume().state is MirrorState.MIRRORED  # resume when mirrored: no-op
    m.quiesce()
    assert m.quiesce().state is MirrorState.QUIESCED
    m.mount("dc1")  # already mounted: no-op
    m.unmount("dc1")
    m.unmount("dc1")
    m.break_()
    before = m.status()
    assert m.break_() == before
    assert m.quiesce() == before
    m.mount("dc2")
    m.mount("dc2")
    m.reverse()
    after = m.status()
    assert m.reverse(new_source="dc2") == after
    assert btrfs.mount_at(lab.service("dc1")) is None


@pytest.mark.parametrize("op", ["update", "resume"])
def test_broken_refuses_operations_that_would_overwrite_the_destination(lab: Lab, op: str) -> None:
    lab.mirror().unmount("dc1")
    lab.mirror().break_()
    with pytest.raises(Failed, match="broken"):
        getattr(lab.mirror(), op)()


def test_reverse_refuses_unless_broken(lab: Lab) -> None:
    with pytest.raises(Failed, match="break the relationship first"):
        lab.mirror().reverse()


def test_a_crashed_transfer_leftover_is_redone(lab: Lab) -> None:
    # As if a transfer died after receive started: data@2 half-exists at dc2, unrecorded.
    btrfs.subvolume_create(lab.snap("dc2", "data@2"))
    (lab.service("dc1") / "msg").write_text("retried")
    status = lab.mirror().update()
    assert status.last_snapshot == "data@2"
    assert (lab.snap("dc2", "data@2") / "msg").read_text() == "retried"


def test_a_missing_common_snapshot_is_refused(lab: Lab) -> None:
    # Remove the common snapshot at the destination: the incremental send cannot work.
    btrfs.subvolume_delete(lab.snap("dc2", "data@1"))
    with pytest.raises(Failed, match="common snapshot data@1 is missing"):
        lab.mirror().update()


def test_a_failed_send_records_last_error(lab: Lab) -> None:
    # A destination whose snapshot directory is read-only makes `btrfs receive` fail.
    snaps = lab.config.sites["dc2"].pool / "snaps"
    os.chmod(snaps, 0o555)
    btrfs.run(["chattr", "+i", str(snaps)])
    try:
        with pytest.raises(Failed):
            lab.mirror().update()
        status = lab.mirror().status()
        assert status.last_error and not status.healthy
    finally:
        btrfs.run(["chattr", "-i", str(snaps)])
        os.chmod(snaps, 0o755)
    assert lab.mirror().update().last_error is None


def test_state_survives_a_new_process(lab: Lab) -> None:
    lab.mirror().quiesce()
    assert lab.config.state_file.exists()
    reloaded = BtrfsMirror(MirrorConfig.load(lab.config_path), clock=lab.clock)
    assert reloaded.status().state is MirrorState.QUIESCED


def test_initialize_refuses_a_state_file_from_recreated_volumes(lab: Lab) -> None:
    btrfs.subvolume_delete(lab.snap("dc2", "data@1"))  # as if dc2's volume was recreated
    with pytest.raises(Failed, match="remove the state file"):
        lab.mirror().initialize()


def test_a_salvage_snapshot_keeps_what_the_old_source_took_after_the_last_transfer(
    lab: Lab,
) -> None:
    """A failover without a final transfer: dc1's write after the last transfer is in its
    live copy only. The salvage snapshot keeps it readable (read-only, taken once per
    name); the last common snapshot does not have it; once reversed, dc1 has no live copy
    left to snapshot (it was retired)."""
    (lab.service("dc1") / "synced").write_text("both")
    lab.mirror().update()
    (lab.service("dc1") / "late").write_text("acknowledged by dc1 only")
    m = lab.mirror()
    m.unmount("dc1")  # as the dead-man agent fences it
    m.break_()  # the failover: no final transfer

    taken = m.salvage_snapshot("dc1", "op1")
    assert taken == m.salvage_path("dc1", "op1")
    assert (taken / "late").read_text() == "acknowledged by dc1 only"
    assert btrfs.subvolume_show(taken).readonly
    assert m.salvage_snapshot("dc1", "op1") == taken  # once per name
    common = m.common_snapshot("dc1")
    assert common is not None and (common / "synced").exists() and not (common / "late").exists()
    assert (m.live_path("dc2") / "synced").exists() and not (m.live_path("dc2") / "late").exists()

    m.reverse()
    assert m.salvage_snapshot("dc1", "op2") is None
    assert (taken / "late").exists(), "a reverse leaves the salvage snapshot alone"


def test_only_the_newest_salvage_snapshots_are_kept(lab: Lab) -> None:
    """Each reprotect leaves a snapshot of the old site's copy; the newest `keep` stay,
    and the current operation's always, whatever its name sorts as."""
    m = lab.mirror()
    for name in ("op-c", "op-a", "op-d", "op-b"):  # taken in this order
        (lab.service("dc1") / name).write_text(name)
        assert m.salvage_snapshot("dc1", name) is not None
    gone = m.prune_salvage("dc1", 2, current="op-c")
    assert sorted(p.name for p in gone) == ["data@op-a"]
    left = sorted(p.name for p in (m.salvage_path("dc1", "x").parent).iterdir())
    assert left == ["data@op-b", "data@op-c", "data@op-d"]
    assert (m.salvage_path("dc1", "op-d") / "op-d").read_text() == "op-d"
    assert m.prune_salvage("dc1", 2, current="op-b") == [m.salvage_path("dc1", "op-c")]
