"""The pre-sync on the real lab: a switchover whose mirror lags sends the volume's changes
while the application still serves, so the transfer after the stop carries only the
last seconds; every acknowledged message is readable on the new site afterwards.

Checked with the mirror driver's own history (which transfers ran, and when), the
transferred snapshot's own files (what the pre-sync carried) and a real IMAP client."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.lab import procs, volumes
from tests.engine.conftest import Cluster
from tests.engine.ledger import mirror_history

pytestmark = pytest.mark.lab

PRE_SYNC_ABOVE_S = 1.0


@pytest.fixture
def mirror_paused(cluster: Cluster) -> Iterator[None]:
    """The lab's scheduled transfers stopped, as a SnapMirror schedule of minutes would
    leave the mirror behind; resumed afterwards."""
    daemon = cluster.lab.state().components[f"{volumes.MIRROR_SITE}-mirrord"]
    procs.signal_group(daemon, signal.SIGSTOP)
    try:
        yield
    finally:
        procs.signal_group(daemon, signal.SIGCONT)


@pytest.fixture
def eager(cluster: Cluster) -> Iterator[Path]:
    """The lab's topology with a pre-sync for any mirror lagging over a second, beside it
    (its paths are relative to it)."""
    topology = yaml.safe_load(cluster.topology_file.read_text())
    topology.setdefault("policy", {})["pre_sync_above"] = f"{PRE_SYNC_ABOVE_S:g}s"
    path = cluster.topology_file.with_name("topology-pre-sync.yaml")
    path.write_text(yaml.safe_dump(topology))
    try:
        yield path
    finally:
        path.unlink()


def _in_snapshot(cluster: Cluster, snapshot: str, subject: str) -> bool:
    """Whether the destination's copy of `snapshot` holds the message (its own files)."""
    snaps = cluster.lab.state_dir / "volumes" / "dc2" / "snaps" / snapshot
    return any(
        subject.encode() in f.read_bytes() for f in snaps.rglob("Maildir/*/*") if f.is_file()
    )


def _step_started(cluster: Cluster, op_id: str, step: str) -> float:
    topo = cluster.topology
    client = connect(topo)
    try:
        store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
        started = store.records(op_id)[step].started
    finally:
        client.stop()
        client.close()
    assert started is not None
    return started


def test_a_lagging_mirror_is_sent_before_the_application_stops(
    cluster: Cluster, mirror_paused: None, eager: Path
) -> None:
    cluster.assert_protected("dc1")
    subject = cluster.send_mail("dc1")
    cluster.wait_delivered("dc1", subject)  # acknowledged, and only on dc1's copy so far

    moved = cluster.ok(
        "switchover", "-c", str(eager), "--to", "dc2", "--yes",
        "--reason", "pre-sync scenario",
    )  # fmt: skip

    assert moved["status"] == "succeeded", moved["message"]
    steps = {s["id"]: s for s in moved["steps"]}
    assert steps["pre-sync/mailstore"]["status"] == "done"
    assert steps["pre-sync/mailstore"]["detail"].startswith("applied and verified")
    # The driver's own history: two manual transfers by this move, the pre-sync while
    # the application served (before the stop began), then the final one.
    updates = [
        e
        for e in mirror_history(cluster)
        if e["op"] == "update" and e["at"] >= moved["started"] and "transferred" in e["outcome"]
    ]
    assert len(updates) == 2, json.dumps(mirror_history(cluster), indent=1)
    stopping = _step_started(cluster, moved["id"], "disable-application/dc1/mta")
    assert updates[0]["at"] < stopping < updates[1]["at"], (updates, stopping)
    pre_sync_snapshot = updates[0]["outcome"].split()[1]
    assert _in_snapshot(cluster, pre_sync_snapshot, subject), (
        f"the pre-sync's snapshot {pre_sync_snapshot} lacks the message written before it"
    )
    assert cluster.mail_count("dc2", subject) == 1, "every acknowledged message on the new site"
