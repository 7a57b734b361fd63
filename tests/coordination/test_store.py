"""Operation records and checkpoints in a real ZooKeeper, and the executor over them."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.audit import AuditLog
from orchestrator.config import load_topology
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths, decode_step_id, encode_step_id
from orchestrator.coordination.store import ZkStore
from orchestrator.engine.executor import Executor
from orchestrator.engine.records import OperationRecord, OpStatus, StepRecord, StepStatus
from orchestrator.errors import Conflict, Failed, LeaseLost, SitectlError
from orchestrator.plan import Action, assumed_state, build_plan
from tests.unit.engine_fakes import ScriptedHandler, operation_record

pytestmark = pytest.mark.lab
EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"


def _op(plan, op_id: str = "20261122T150000Z-0001") -> OperationRecord:
    return operation_record(plan, op_id)


@pytest.mark.parametrize("step_id", ["dns/corp.example.net.", "a/b/c", "50%/x", "plain"])
def test_step_ids_survive_the_znode_name(step_id: str) -> None:
    assert "/" not in encode_step_id(step_id)
    assert decode_step_id(encode_step_id(step_id)) == step_id


def test_records_round_trip_and_checkpoints_compare_and_set(ensemble, chroot) -> None:
    topo = load_topology(EXAMPLE)
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    client = ensemble.client()
    try:
        paths = ZkPaths(chroot)
        store, lease = ZkStore(client, paths), Lease(client, paths, "op")
        lease.acquire()
        op = _op(plan)
        store.start_operation(lease, op)
        assert store.current_operation() == op.id
        assert store.operation(op.id) == (op, 0)

        running = StepRecord("dns/corp.example.net.").advance(
            StepStatus.RUNNING, now=2.0, epoch=lease.epoch
        )
        version = store.write_step(lease, op.id, running, None)
        done = running.advance(StepStatus.DONE, now=3.0, epoch=lease.epoch, detail="ok")
        store.write_step(lease, op.id, done, version)
        with pytest.raises(Conflict):
            store.write_step(lease, op.id, done, version)  # a second writer with the old version
        assert store.steps(op.id) == {"dns/corp.example.net.": (done, version + 1)}

        assert store.abort_requested(op.id) is None
        store.request_abort(op.id, "carol@laptop")
        store.request_abort(op.id, "dave@laptop")  # the first request stands
        assert store.abort_requested(op.id) == "carol@laptop"

        store.set_active_site(lease, "dc2")
        store.set_active_site(lease, "dc1")
        assert store.active_site() == "dc1"
        assert store.operation_ids() == [op.id]
    finally:
        client.stop()


def test_the_executor_over_zookeeper_resumes_under_a_new_epoch(ensemble, chroot, tmp_path) -> None:
    topo = load_topology(EXAMPLE)
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    paths = ZkPaths(chroot)
    first_client, second_client = ensemble.client(), ensemble.client()
    try:
        store = ZkStore(first_client, paths)
        lease = Lease(first_client, paths, "first")
        lease.acquire()
        op = _op(plan)
        store.start_operation(lease, op)
        failing = ScriptedHandler(
            always={"unmount/dc1/metadata1": Failed("umount: target is busy")}
        )
        result = _run(plan, topo, store, lease, failing, tmp_path)
        assert (result.status, result.failed_step) == (OpStatus.FAILED, "unmount/dc1/metadata1")
        lease.release()

        # Another controller picks it up: new client, new lease, higher epoch.
        store2 = ZkStore(second_client, paths)
        lease2 = Lease(second_client, paths, "second")
        lease2.acquire()
        assert lease2.epoch > lease.epoch
        resumed = ScriptedHandler()
        result = _run(plan, topo, store2, lease2, resumed, tmp_path)

        assert result.status is OpStatus.SUCCEEDED
        assert set(failing.applied).isdisjoint(resumed.applied)
        records = {k: r for k, (r, _) in store2.steps(op.id).items()}
        assert records["unmount/dc1/metadata1"].epoch == lease2.epoch
        assert records["preflight/zookeeper"].epoch == lease.epoch
        assert store2.current_operation() is None
        assert store2.operation(op.id)[0].status is OpStatus.SUCCEEDED

        # The first leader, still connected but no longer holding the lease, is fenced.
        with pytest.raises(LeaseLost):
            _run(plan, topo, store, lease, ScriptedHandler(), tmp_path)
    finally:
        first_client.stop(), second_client.stop()


def _run(plan, topo, store, lease, handler, tmp_path):
    return Executor(
        plan=plan,
        topology=topo,
        store=store,
        lease=lease,
        handlers=dict.fromkeys(Action, handler),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        artifacts=tmp_path,
        sleep=lambda _: None,
    ).run(_op(plan).id)


def test_session_expiry_inside_a_step_interrupts_the_leader(ensemble, chroot, tmp_path) -> None:
    """R5: the session expires while a step runs (forced, as a partition longer than the
    session timeout does). The leader's run stops at its next write: that step is not
    recorded done, nothing after it runs, and the next leader finishes from there."""
    topo = load_topology(EXAMPLE)
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    paths = ZkPaths(chroot)
    leader, successor = ensemble.client(), ensemble.client()
    try:
        store, lease = ZkStore(leader, paths), Lease(leader, paths, "leader")
        lease.acquire()
        op = _op(plan)
        store.start_operation(lease, op)
        cut = "disable-application/dc1/mailbox"  # alone in its group: no sibling runs

        class ExpiresInside(ScriptedHandler):
            def apply(self, step, ctx) -> None:  # type: ignore[no-untyped-def]
                super().apply(step, ctx)
                if step.id == cut:
                    ensemble.expire(leader)

        first = ExpiresInside()
        # LeaseLost, or the write failing as the connection is torn down: either way
        # one of our errors, and the run is over.
        with pytest.raises(SitectlError):
            _run(plan, topo, store, lease, first, tmp_path)
        assert first.applied[-1] == cut, "nothing ran after the expiry"

        store2, lease2 = ZkStore(successor, paths), Lease(successor, paths, "successor")
        lease2.acquire(wait=15.0)
        records = {k: r for k, (r, _) in store2.steps(op.id).items()}
        assert records[cut].status is StepStatus.RUNNING, "the interrupted step is not done"
        second = ScriptedHandler()
        assert _run(plan, topo, store2, lease2, second, tmp_path).status is OpStatus.SUCCEEDED
        assert second.applied[0] == cut and not set(first.applied[:-1]) & set(second.applied)
    finally:
        leader.stop(), successor.stop()
