"""Issue 4 on the real lab: switchover there and back, dry runs, one operation at a time,
and SIGKILL at step boundaries followed by resume."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from orchestrator.audit import AuditLog
from orchestrator.coordination.client import connect
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import LeaseLost
from tests.conftest import eventually
from tests.engine.conftest import SITECTL, Cluster

pytestmark = pytest.mark.lab


def assert_no_task_started_only_to_be_skipped(cluster: Cluster, op_id: str) -> None:
    """Each host step of the shared runs started only tasks that ran: none that its
    `when` then skipped (a worker fork each, inside the downtime), whatever the other steps
    of the run do (the lab's DNS role by its services, the others by their commands)."""
    tasks = cluster.shared_run_tasks(op_id)
    started = {e["task"] for e in tasks if e["event"] == "runner_on_start"}
    # The stops and starts by the roles' commands, and the mirror's steps, ran in them.
    assert any(t.startswith("stop mta by its commands, at epoch") for t in started), started
    assert any(t.startswith("start mailbox by its commands, at epoch") for t in started), started
    assert "btrfs: break" in started, started
    assert [e for e in tasks if e["event"] == "runner_on_skipped"] == []


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
    assert_no_task_started_only_to_be_skipped(cluster, there["id"])

    refused = cluster.sitectl("switchover", "--to", "dc1", "--yes")
    assert refused.returncode == 4
    assert "run `sitectl reprotect`" in refused.stderr
    # `plan` sees what the switchover saw: dc2 is active (as ZooKeeper records it, not
    # as the topology file says), and the way back needs the mirrors reversed first.
    planned = cluster.sitectl("plan", "--to", "dc1")
    assert planned.returncode == 4
    assert "dc2 is active, as ZooKeeper records it" in planned.stderr
    assert "run `sitectl reprotect`" in planned.stderr

    during = cluster.send_mail("dc2")
    cluster.wait_delivered("dc2", during)
    cluster.ok("reprotect", "--yes", "--reason", "scenario")
    planned = cluster.sitectl("plan", "--to", "dc1", "--json")
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["from_site"] == "dc2"
    back = cluster.ok("switchover", "--to", "dc1", "--yes", "--reason", "scenario")

    assert back["status"] == "succeeded"
    assert_no_task_started_only_to_be_skipped(cluster, back["id"])
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
    client = connect(topo, timeout=15)  # sitectl's digest identity: its znodes are ACLed
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


def test_two_switchovers_started_at_once_exactly_one_runs(cluster: Cluster) -> None:
    """Two real `sitectl switchover` processes race for the lease: one moves the
    service, the other exits 3 naming the holder, and the lab has moved once."""
    cluster.assert_protected("dc1")
    reasons = ("race one", "race two")
    runs = [
        subprocess.Popen(
            [SITECTL, "switchover", "--to", "dc2", "--yes", "--json", "--reason", reason],
            env=cluster.env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for reason in reasons
    ]
    try:
        outputs = [run.communicate(timeout=300) for run in runs]
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()

    codes = [run.returncode for run in runs]
    assert sorted(codes) == [0, 3], outputs
    won = codes.index(0)
    winner, (result, _) = runs[won], outputs[won]
    _, refusal = outputs[1 - won]
    op = json.loads(result)
    assert op["status"] == "succeeded"
    # Refused at the lease (the holder's user@host:pid) or, a moment later, at the
    # operation the holder has recorded (its id): either way the loser names the winner.
    assert refusal.startswith("busy: "), refusal
    assert f":{winner.pid}" in refusal or op["id"] in refusal, refusal
    cluster.assert_active("dc2")
    assert cluster.status()["operation"]["id"] == op["id"]
    audit = AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
    started = [e for e in audit if e["event"] == "operation.started" and e["reason"] in reasons]
    assert [e["op"] for e in started] == [op["id"]], "exactly one operation ran"


@pytest.mark.parametrize("fault", ["kill-site", "pause-site"])
def test_a_switchover_with_the_old_site_down_says_use_failover(
    cluster: Cluster, fault: str
) -> None:
    """A dead site refuses connections (the plan refuses); a hung one accepts them and
    then says nothing (the pre-flight checks refuse). Both: exit 4, nothing changed, and
    the operator is told the way on."""
    cluster.assert_protected("dc1")
    dns_before, mounts_before = cluster.dns_answers(), cluster.mounted_sites()
    cluster.lab.ok(fault, "dc1")
    try:
        refused = cluster.sitectl("switchover", "--to", "dc2", "--yes", "--json")
        mounts_during = cluster.mounted_sites()
    finally:
        cluster.lab.heal_all()

    assert refused.returncode == 4, refused.stderr + refused.stdout
    said = refused.stdout + refused.stderr
    assert "use `sitectl failover --to dc2`" in said, said
    assert mounts_during == mounts_before == {"dc1"}
    assert cluster.dns_answers() == dns_before
    op = cluster.status()["operation"]
    assert not op or not op["in_progress"]
    eventually(lambda: cluster.at_home(), "dc1 active and protected after the heal", within=60)


def test_sigkill_after_every_checkpoint_then_resume(cluster: Cluster) -> None:
    """Kill sitectl (SIGKILL: no cleanup) after its first checkpoint, resume, kill the
    resumed process after its first checkpoint, and so on until the switchover is done.
    Every step boundary is a kill point, and steps of a parallel group that were still
    running when their sibling's checkpoint triggered the kill are killed inside."""
    cluster.assert_protected("dc1")
    plan = json.loads(cluster.sitectl("plan", "--to", "dc2", "--json").stdout)
    before = cluster.send_mail("dc1")
    cluster.wait_delivered("dc1", before)
    kill = {"SITECTL_FAULT_KILL_AFTER_STEPS": "1"}

    killed = cluster.sitectl("switchover", "--to", "dc2", "--yes", "--reason", "kill chain", **kill)
    kills = 1
    while killed.returncode == -signal.SIGKILL:
        assert cluster.status()["operation"]["status"] == "running"
        killed = cluster.sitectl("resume", "--yes", **kill)
        kills += 1
        assert kills < 60, "the kill chain does not converge"
    assert killed.returncode == 0, killed.stderr

    status = cluster.status()["operation"]
    assert status["status"] == "succeeded"
    cluster.assert_active("dc2")
    assert cluster.mail_count("dc2", before) == 1
    assert kills >= len(plan["groups"]), "fewer kills than step boundaries"
    audit = [
        e
        for e in AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
        if e.get("op") == status["id"]
    ]
    finished = [e["step"] for e in audit if e["event"] in ("step.done", "step.skipped")]
    assert len(finished) == len(set(finished)), "a step finished twice"
    # ZooKeeper's checkpoints are the record: every step of the plan finished there. (A
    # kill can land between a parallel sibling's checkpoint and its audit line, so the
    # audit may miss an outcome that was in flight; it never shows one twice.)
    assert status["steps_finished"] == sum(len(g["steps"]) for g in plan["groups"])
    assert len(finished) <= status["steps_finished"]
    applied = [
        e["step"]
        for e in audit
        if e["event"] == "step.done" and e["detail"] == "applied and verified"
    ]
    assert len(applied) == len(set(applied)), "an effect was applied twice"
    resumes = [e for e in audit if e["event"] == "operation.resumed"]
    assert len(resumes) == kills - 1
    assert len({e["epoch"] for e in resumes}) == kills - 1, "every resume took a new epoch"

    # And the service goes home by operations after the chain, as after any switchover.
    cluster.move_back_to_dc1()
    cluster.assert_protected("dc1")


def test_sitectl_znodes_are_sitectl_s_alone(cluster: Cluster) -> None:
    """Digest ACLs: on an ensemble shared with other users, only sitectl's identity (the
    topology's zookeeper.auth) reads or moves its leases, checkpoints and pause."""
    topo = cluster.topology
    root = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster).root
    paused = cluster.sitectl("pause", "--reason", "acl check")
    assert paused.returncode == 0, paused.stderr
    try:
        user = cluster.lab.secret(str(topo.base_dir / topo.zookeeper.auth.credentials.file))
        user = user.partition(":")[0]
        # Over the lab's TLS port, as sitectl itself connects: the CA is public.
        assert topo.zookeeper.tls is not None
        tls = {"use_ssl": True, "ca": str(topo.resolve(topo.zookeeper.tls.ca_file))}
        anonymous = KazooClient(hosts=topo.zookeeper.connect_string(), **tls)
        intruder = KazooClient(
            hosts=topo.zookeeper.connect_string(),
            auth_data=[("digest", f"{user}:guessed")],
            **tls,
        )
        for client in (anonymous, intruder):
            client.start(timeout=15)
            try:
                with pytest.raises(NoAuthError):
                    client.get(f"{root}/paused")
                with pytest.raises(NoAuthError):
                    client.delete(f"{root}/paused")
                with pytest.raises(NoAuthError):  # not even who may read it
                    client.get_acls(f"{root}/paused")
            finally:
                client.stop()
                client.close()
        own = connect(topo, timeout=15)
        try:
            acls, _ = own.get_acls(f"{root}/paused")
        finally:
            own.stop()
            own.close()
        assert [(a.id.scheme, a.id.id.partition(":")[0]) for a in acls] == [("digest", user)]
        assert cluster.status()["paused"], "sitectl itself still reads it"
    finally:
        assert cluster.sitectl("unpause").returncode == 0
