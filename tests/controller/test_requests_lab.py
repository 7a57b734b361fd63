"""Issue 22 on the real lab: the leading controller runs the operations operators ask for.

Invariants, each read from the servers and ZooKeeper rather than from sitectl's word:
- an operation asked for from a shell that is then killed finishes anyway (the volume
  is mounted at the new site only, DNS names it, its mail service answers there and the
  old site's does not), and `sitectl attach`
  follows it to that end;
- the leader SIGKILLed in the middle of an operation: its successor finishes it, and
  nobody typed `resume` (the audit log holds no resume by an operator);
- two operators asking at once: exactly one operation is recorded; the other is told
  who holds it (exit 3);
- the operator's identity and reason reach the audit log beside the controller's own;
- with no controller running, sitectl says so within seconds, names `--local`, and
  leaves no request behind and nothing started.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.asking.store import RequestStore
from orchestrator.audit import os_user
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.records import OperationRecord, OpStatus, StepStatus
from tests.conftest import LabHandle, eventually
from tests.engine.conftest import SITECTL, Cluster, lab_controllers

pytestmark = pytest.mark.lab


@pytest.fixture(scope="module")
def cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


@pytest.fixture
def controllers(cluster: Cluster) -> Iterator[None]:
    with lab_controllers(cluster):
        yield


def asking_env(cluster: Cluster, **extra: str) -> dict[str, str]:
    """What an operator's shell has: no SITECTL_LOCAL, so sitectl asks the controllers."""
    env = cluster.env(**extra)
    env.pop("SITECTL_LOCAL", None)
    return env


def ask(cluster: Cluster, *args: str, **extra: str) -> subprocess.Popen[str]:
    """`sitectl ARGS` started as an operator's shell would, in a session of its own (so
    the test can kill the whole shell, as a dropped SSH connection does)."""
    return subprocess.Popen(
        [SITECTL, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=asking_env(cluster, **extra),
        start_new_session=True,
    )


class Zk:
    """The cluster's records and requests, read with a client of the test's own."""

    def __init__(self, cluster: Cluster) -> None:
        topo = cluster.topology
        self.client = connect(topo, timeout=30)
        paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
        self.store = ZkStore(self.client, paths)
        self.requests = RequestStore(self.client, paths)

    def close(self) -> None:
        self.client.stop()
        self.client.close()

    def operations(self) -> list[OperationRecord]:
        return [self.store.operation(op_id)[0] for op_id in self.store.operation_ids()]

    def current(self) -> OperationRecord | None:
        op_id = self.store.current_operation()
        return self.store.operation(op_id)[0] if op_id else None


@pytest.fixture
def zk(cluster: Cluster) -> Iterator[Zk]:
    found = Zk(cluster)
    try:
        yield found
    finally:
        found.close()


def audit(cluster: Cluster, event: str) -> list[dict[str, Any]]:
    topo = cluster.topology
    path = topo.resolve(topo.local_state) / "audit.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == event]


def finished(proc: subprocess.Popen[str], within: float = 240) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=within)
    return proc.returncode, out, err


def test_with_no_controller_sitectl_says_so_names_local_and_starts_nothing(
    cluster: Cluster, zk: Zk
) -> None:
    before = zk.store.operation_ids()

    code, out, err = finished(
        ask(cluster, "switchover", "--to", "dc2", "--yes", "--reason", "nobody home"), 60
    )

    assert code == 1, out + err
    assert "no controller took request" in err and "--local" in err, err
    assert zk.store.operation_ids() == before, "nothing started"
    assert zk.requests.pending() == [], "the request was withdrawn"
    assert cluster.mounted_sites() == {"dc1"}


def test_a_switchover_goes_on_when_the_operators_shell_is_killed_and_attach_follows_it(
    cluster: Cluster, controllers: None, zk: Zk
) -> None:
    reason = "issue 22: the shell is killed"
    shell = ask(cluster, "switchover", "--to", "dc2", "--yes", "--reason", reason)
    # The shell dies as soon as the controller has the operation recorded and running.
    running = eventually(
        lambda: (op := zk.current()) is not None and op.status is OpStatus.RUNNING and op,
        "the controller records the switchover",
        within=60,
    )
    os.killpg(shell.pid, signal.SIGKILL)
    shell.wait(timeout=10)

    follow = subprocess.run(
        [SITECTL, "attach", "--json"],
        capture_output=True,
        text=True,
        env=asking_env(cluster),
        timeout=240,
        stdin=subprocess.DEVNULL,
    )

    assert follow.returncode == 0, follow.stderr + follow.stdout
    outcome = json.loads(follow.stdout)
    assert outcome["id"] == running.id and outcome["status"] == "succeeded"
    # The world, from the servers: DNS everywhere names dc2, dc2 alone holds the volume,
    # its mail service answers and dc1's refuses.
    cluster.assert_active("dc2")
    # Who asked and why, beside the controller that ran it.
    (started,) = [e for e in audit(cluster, "operation.started") if e["op"] == running.id]
    assert started["requested_by"] == os_user() and started["reason"] == reason
    assert started["request"].startswith("req-")
    assert started["executed_by"].split()[0] in ("dc1", "dc2", "witness")
    record = zk.store.operation(running.id)[0]
    assert record.by == os_user() and record.requested == started["request"]


def test_two_operators_at_once_exactly_one_runs_the_other_is_told_who_holds_it(
    cluster: Cluster, controllers: None, zk: Zk
) -> None:
    _to_be_reprotected(cluster)
    before = set(zk.store.operation_ids())

    first = ask(cluster, "reprotect", "--yes", "--reason", "operator one")
    second = ask(cluster, "reprotect", "--yes", "--reason", "operator two")
    results = [finished(first), finished(second)]

    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 3], results
    busy = next(err for code, _, err in results if code == 3)
    assert "busy:" in busy and "runs under" in busy, busy
    # The busy one names the operation that runs and who asked for it.
    ran = [zk.store.operation(op_id)[0] for op_id in set(zk.store.operation_ids()) - before]
    assert len(ran) == 1, [op.id for op in ran]
    assert ran[0].mode == "reprotect" and ran[0].status is OpStatus.SUCCEEDED
    assert ran[0].reason in busy
    (refused,) = [
        e
        for e in audit(cluster, "request.refused")
        if e["reason"] in ("operator one", "operator two")
    ]
    assert refused["exit_code"] == 3 and refused["reason"] != ran[0].reason


def test_the_leader_killed_mid_switchover_its_successor_finishes_it_unasked(
    cluster: Cluster, controllers: None, zk: Zk
) -> None:
    _to_be_reprotected(cluster)
    _reprotected(cluster, zk)
    home = cluster.status()["active_site"]
    target = "dc1" if home == "dc2" else "dc2"
    shell = ask(cluster, "switchover", "--to", target, "--yes", "--reason", "leader dies")

    # The leader is killed once the old site's application is stopped and the next step
    # runs: the operation is half done, holding the lease.
    def half_done() -> OperationRecord | None:
        op = zk.current()
        if op is None:
            return None
        records = zk.store.records(op.id)
        stopped = [r for k, r in records.items() if k.startswith("disable-application/")]
        if stopped and all(r.status is StepStatus.DONE for r in stopped):
            return op
        return None

    op = eventually(half_done, "the old site's application stopped", within=90)
    found = zk.requests.answer(_request_of(zk, op.id))
    assert found is not None
    leader = found[0].controller  # "SITE user@host:pid"
    os.kill(int(leader.rsplit(":", 1)[1]), signal.SIGKILL)
    # Its site's controller comes back as a follower: the successor is another one.
    cluster.lab.ok("controllers", "up")

    code, out, err = finished(shell)

    assert code == 0, out + err
    record = zk.store.operation(op.id)[0]
    assert record.status is OpStatus.SUCCEEDED and record.to_site == target
    cluster.assert_active(target)
    resumed = [e for e in audit(cluster, "operation.resumed") if e["op"] == op.id]
    assert resumed, "the successor resumed it"
    assert all(e.get("executed_by") is None or e["executed_by"] != leader for e in resumed)
    # Nobody typed `sitectl resume`: every resume was a controller's own.
    assert not [e for e in audit(cluster, "operation.requested") if e.get("verb") == "resume"]


def _request_of(zk: Zk, op_id: str) -> str:
    record = zk.store.operation(op_id)[0]
    assert record.requested is not None
    return record.requested


def _to_be_reprotected(cluster: Cluster) -> None:
    """The service moved away from dc1 (the module's first switchover, or this one)."""
    if cluster.status()["active_site"] == "dc1":
        done = cluster.sitectl("switchover", "--to", "dc2", "--yes")
        assert done.returncode == 0, done.stderr + done.stdout


def _reprotected(cluster: Cluster, zk: Zk) -> None:
    ops = zk.operations()
    if ops and ops[-1].mode == "reprotect" and ops[-1].status is OpStatus.SUCCEEDED:
        return
    done = cluster.sitectl("reprotect", "--yes")
    assert done.returncode == 0, done.stderr + done.stdout
