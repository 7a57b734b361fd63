"""Issue 4 on the real lab: switchover there and back, dry runs, one operation at a time,
and SIGKILL at step boundaries followed by resume."""

from __future__ import annotations

import json
import signal

import pytest
from kazoo.client import KazooClient

from orchestrator.audit import AuditLog
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import LeaseLost
from orchestrator.plan import Phase
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab


def test_switchover_there_and_back_keeps_every_message(cluster: Cluster) -> None:
    cluster.assert_protected("dc1")
    before = cluster.send_mail("dc1")
    cluster.wait_delivered("dc1", before)

    there = cluster.ok("switchover", "--to", "dc2", "--yes", "--reason", "scenario")

    assert there["status"] == "succeeded"
    assert {s["status"] for s in there["steps"]} == {"done"}
    cluster.assert_active("dc2")
    assert cluster.mail_count("dc2", before) == 1
    assert cluster.mail_count("dc2", f"sitectl-canary {there['id']}") == 1

    refused = cluster.sitectl("switchover", "--to", "dc1", "--yes")
    assert refused.returncode == 4
    assert "run `sitectl reprotect`" in refused.stderr

    during = cluster.send_mail("dc2")
    cluster.wait_delivered("dc2", during)
    cluster.ok("reprotect", "--yes", "--reason", "scenario")
    back = cluster.ok("switchover", "--to", "dc1", "--yes", "--reason", "scenario")

    assert back["status"] == "succeeded"
    cluster.assert_active("dc1")
    assert cluster.mail_count("dc1", before) == 1
    assert cluster.mail_count("dc1", during) == 1
    # Failing back ends with dc1 protected towards dc2 again, as it all began.
    cluster.ok("reprotect", "--yes", "--reason", "scenario")
    cluster.assert_protected("dc1")
    audit = AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
    started = [e for e in audit if e["event"] == "operation.started" and e["op"] == back["id"]]
    assert started and started[0]["reason"] == "scenario" and started[0]["user"]


def test_dry_run_changes_nothing(cluster: Cluster) -> None:
    cluster.assert_protected("dc1")
    dns_before, mounts_before = cluster.dns_answers(), cluster.mounted_sites()
    last_before = cluster.status()["operation"]

    done = cluster.sitectl("switchover", "--to", "dc2", "--dry-run")

    assert done.returncode == 0, done.stderr
    assert "dry run: would switchover dc1 → dc2; nothing changed" in done.stdout
    assert cluster.dns_answers() == dns_before
    assert cluster.mounted_sites() == mounts_before
    assert cluster.status()["operation"] == last_before
    cluster.assert_active("dc1")


def test_one_operation_at_a_time_and_a_stale_epoch_is_refused(cluster: Cluster) -> None:
    topo = cluster.topology
    client = KazooClient(hosts=topo.zookeeper.connect_string())
    client.start(timeout=15)
    try:
        holder = Lease(
            client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster), "drill-holder@test:1"
        )
        holder.acquire()
        busy = cluster.sitectl("switchover", "--to", "dc2", "--yes")
        assert busy.returncode == 3
        assert "busy: another operation holds the lock: drill-holder@test:1" in busy.stderr
        cluster.assert_active("dc1")  # nothing moved

        holder.release()
        cluster.ok("switchover", "--to", "dc2", "--yes", "--reason", "after the lock")
        # The CLI's run took a newer epoch: the old holder's writes are refused.
        stale = Lease(client, holder._paths, "drill-holder@test:1")
        stale.epoch = holder.epoch
        stale.ensure = lambda: None  # type: ignore[method-assign]
        with pytest.raises(LeaseLost, match="fencing epoch is no longer"):
            stale.set(holder._paths.active_site, b"dc1")
        assert cluster.status()["active_site"] == "dc2"
    finally:
        client.stop()
        cluster.move_back_to_dc1()


def _phase_boundaries(cluster: Cluster, to_site: str) -> list[int]:
    plan = json.loads(cluster.sitectl("plan", "--to", to_site, "--json").stdout)
    counts, done = [], 0
    for phase in [p.value for p in Phase]:
        in_phase = sum(len(g["steps"]) for g in plan["groups"] if g["phase"] == phase)
        if in_phase:
            done += in_phase
            counts.append(done)
    return counts[:-1]  # after the last one there is nothing left to resume


@pytest.mark.parametrize("boundary", range(9))
def test_sigkill_at_a_phase_boundary_then_resume(cluster: Cluster, boundary: int) -> None:
    # Each case moves the service the other way from where the last one left it (and
    # protects it again), so no case pays for a trip home.
    here = cluster.status()["active_site"]
    there = "dc2" if here == "dc1" else "dc1"
    cluster.assert_protected(here)
    boundaries = _phase_boundaries(cluster, there)
    if boundary >= len(boundaries):
        pytest.fail(f"the lab plan has only {len(boundaries)} phase boundaries")
    after = boundaries[boundary]
    before = cluster.send_mail(here)
    cluster.wait_delivered(here, before)

    killed = cluster.sitectl(
        "switchover",
        "--to",
        there,
        "--yes",
        "--reason",
        f"kill after {after}",
        SITECTL_FAULT_KILL_AFTER_STEPS=str(after),
    )
    assert killed.returncode == -signal.SIGKILL
    assert cluster.status()["operation"]["status"] == "running"

    resumed = cluster.ok("resume")

    assert resumed["status"] == "succeeded"
    cluster.assert_active(there)
    assert cluster.mail_count(there, before) == 1
    audit = [
        e
        for e in AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
        if e.get("op") == resumed["id"]
    ]
    finished = [e["step"] for e in audit if e["event"] in ("step.done", "step.skipped")]
    assert len(finished) == len(set(finished)), "a step finished twice"
    assert len(finished) == len(resumed["steps"])
    applied = [
        e["step"]
        for e in audit
        if e["event"] == "step.done" and e["detail"] == "applied and verified"
    ]
    assert len(applied) == len(set(applied)), "an effect was applied twice"
    cluster.ok("reprotect", "--yes", "--reason", "scenario: protect the new site")
    cluster.assert_protected(there)


def test_the_sigkill_cases_leave_dc1_protected(cluster: Cluster) -> None:
    cluster.move_back_to_dc1()
    cluster.assert_protected("dc1")
