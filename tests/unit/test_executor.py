"""The executor's decisions, on an in-memory store: no servers, no sleeping."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.audit import AuditLog
from orchestrator.config import Topology, load_topology
from orchestrator.engine.executor import Executor
from orchestrator.engine.progress import plan_digest, recovery_advice, where_is_the_service
from orchestrator.engine.records import (
    IllegalTransition,
    OpStatus,
    StepRecord,
    StepStatus,
)
from orchestrator.errors import Failed, LeaseLost, Unavailable
from orchestrator.plan import Action, Plan, assumed_state, build_plan, build_reprotect_plan
from tests.unit.engine_fakes import FakeFence, MemoryStore, ScriptedHandler, operation_record

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(EXAMPLE)


def _setup(topo: Topology, tmp_path: Path, mode: str = "switchover", unreachable=frozenset()):
    plan = build_plan(topo, assumed_state(topo, unreachable), mode, "dc2")
    op = operation_record(plan, reason="quarterly drill")
    store = MemoryStore(ops={op.id: (op, 0)}, current=op.id)
    return plan, op, store


def _executor(plan: Plan, topo: Topology, store: MemoryStore, handler, tmp_path: Path, fence=None):
    ticks = iter(range(2000, 100000))
    return Executor(
        plan=plan,
        topology=topo,
        store=store,
        lease=fence or FakeFence(),
        handlers=dict.fromkeys(Action, handler),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        artifacts=tmp_path,
        clock=lambda: float(next(ticks)),
        sleep=lambda _: None,
    )


def _statuses(store: MemoryStore, op_id: str) -> dict[str, str]:
    return {k: r.status.value for k, (r, _) in store.steps(op_id).items()}


def test_a_clean_run_finishes_every_step_and_says_so(topo, tmp_path, caplog) -> None:
    plan, op, store = _setup(topo, tmp_path)
    handler = ScriptedHandler(already={"preflight/dns"})
    caplog.set_level(logging.INFO, "sitectl.engine")

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.SUCCEEDED
    assert set(_statuses(store, op.id).values()) == {"done"}
    assert len(_statuses(store, op.id)) == len(list(plan.steps()))
    assert "preflight/dns" not in handler.applied
    assert any(m.startswith("step preflight/dns done: already true in ") for m in caplog.messages)
    assert "step verify/activate done: applied and verified in 1.00 s" in caplog.messages
    assert store.current is None
    events = [e["event"] for e in AuditLog(tmp_path / "audit.jsonl").read()]
    assert events.count("step.running") == events.count("step.done") == len(list(plan.steps()))
    assert events[-1] == "operation.succeeded"


def test_a_transient_error_is_retried_with_the_reason_logged(topo, tmp_path, caplog) -> None:
    plan, op, store = _setup(topo, tmp_path)
    handler = ScriptedHandler(
        first={"dns/corp.example.net.": [Unavailable("192.0.2.53 timed out")]}
    )
    caplog.set_level(logging.INFO, "sitectl.engine")

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.SUCCEEDED
    assert "dns/corp.example.net." in handler.applied
    assert any(
        m.startswith(
            "step dns/corp.example.net. attempt 1 failed (192.0.2.53 timed out); retrying in"
        )
        for m in caplog.messages
    )


def test_an_unreachable_old_site_is_skipped_in_a_failover(topo, tmp_path, caplog) -> None:
    caplog.set_level(logging.INFO)
    plan, op, store = _setup(topo, tmp_path, "failover", frozenset({"dc1"}))
    old_site = [s.id for s in plan.steps() if s.site == "dc1"]
    handler = ScriptedHandler(always=dict.fromkeys(old_site, Unavailable("dc1 does not answer")))

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.SUCCEEDED
    records = {k: r for k, (r, _) in store.steps(op.id).items()}
    for step_id in old_site:
        assert records[step_id].status is StepStatus.SKIPPED
        assert records[step_id].detail == (
            "skipped: unreachable (dc1 did not answer when the operation was planned)"
        )
    assert not set(old_site) & set(handler.applied), "a site known to be down was touched"
    said = [m for m in caplog.messages if m.startswith(f"step {old_site[0]} skipped")]
    assert [m.rsplit(" in ", 1)[0] for m in said] == [
        f"step {old_site[0]} skipped: unreachable "
        "(dc1 did not answer when the operation was planned)"
    ]


def test_an_old_site_that_dies_mid_way_is_tried_briefly_then_skipped(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path, "failover")  # dc1 answered when planned
    old_site = [s.id for s in plan.steps() if s.site == "dc1"]
    handler = ScriptedHandler(always=dict.fromkeys(old_site, Unavailable("dc1 does not answer")))

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.SUCCEEDED
    records = {k: r for k, (r, _) in store.steps(op.id).items()}
    for step_id in old_site:
        assert records[step_id].detail == "skipped: unreachable (dc1 does not answer)"


def test_a_failed_step_stops_the_operation_and_says_where_the_service_is(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path)
    handler = ScriptedHandler(always={"mount/dc2/mailstore1": Failed("mount: wrong fs type")})

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.FAILED
    assert result.failed_step == "mount/dc2/mailstore1"
    statuses = _statuses(store, op.id)
    assert statuses["mount/dc2/metadata1"] == "done"  # its parallel sibling finished
    assert "dns/corp.example.net." not in statuses  # nothing after the failed group ran
    assert result.message == (
        "step mount/dc2/mailstore1 failed: mount: wrong fs type. half-way: the mirrors towards "
        "dc2 may be broken and neither site may serve; dc1's copy is the newest; "
        f"`sitectl resume {op.id}` continues from the last checkpoint; rolling back now would "
        "need the mirrors reversed, so go forward"
    )


def test_resume_runs_only_what_did_not_finish(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path)
    first = ScriptedHandler(always={"final-sync/metadata1": Failed("transfer aborted")})
    assert _executor(plan, topo, store, first, tmp_path).run(op.id).status is OpStatus.FAILED
    done_before = {k for k, v in _statuses(store, op.id).items() if v == "done"}

    second = ScriptedHandler()
    result = _executor(plan, topo, store, second, tmp_path).run(op.id)

    assert result.status is OpStatus.SUCCEEDED
    assert not done_before & set(second.applied), "a finished step ran again"
    assert "final-sync/metadata1" in second.applied
    records = {k: r for k, (r, _) in store.steps(op.id).items()}
    assert records["final-sync/metadata1"].attempts == 2


def test_a_step_left_running_by_a_crash_runs_again_on_resume(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path)
    crashed = StepRecord(
        "preflight/zookeeper", StepStatus.RUNNING, attempts=1, started=5.0, epoch=3
    )
    store.step_records[op.id] = {"preflight/zookeeper": (crashed, 0)}

    _executor(plan, topo, store, ScriptedHandler(), tmp_path).run(op.id)

    record, _ = store.steps(op.id)["preflight/zookeeper"]
    assert (record.status, record.attempts, record.epoch) == (StepStatus.DONE, 2, 7)


def test_losing_the_lease_stops_before_the_next_side_effect(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path)
    fence = FakeFence(lost_after_ensures=12)
    handler = ScriptedHandler()

    with pytest.raises(LeaseLost):
        _executor(plan, topo, store, handler, tmp_path, fence).run(op.id)

    writes_after_loss = len(store.writes)
    assert fence.ensures > 12
    assert writes_after_loss < 2 * len(list(plan.steps()))
    assert store.ops[op.id][0].status is OpStatus.RUNNING  # left for the next leader


def test_abort_stops_at_the_next_group_and_names_the_active_site(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path)
    store.aborted_by = "alice@ops-laptop"
    result = _executor(plan, topo, store, ScriptedHandler(), tmp_path).run(op.id)
    assert result.status is OpStatus.ABORTED
    assert result.message.startswith(
        "aborted by alice@ops-laptop: dc1 is still active: nothing was changed yet"
    )


def test_a_bug_in_a_handler_fails_the_step_not_the_process(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path)
    handler = ScriptedHandler(always={"readiness/gate": KeyError("lag")})
    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)
    assert result.status is OpStatus.REFUSED  # the gate had changed nothing yet
    assert store.steps(op.id)["readiness/gate"][0].detail == "unexpected error KeyError: 'lag'"


@pytest.mark.parametrize(
    ("old", "new", "legal"),
    [
        (StepStatus.PENDING, StepStatus.RUNNING, True),
        (StepStatus.PENDING, StepStatus.DONE, False),
        (StepStatus.RUNNING, StepStatus.DONE, True),
        (StepStatus.RUNNING, StepStatus.RUNNING, True),
        (StepStatus.FAILED, StepStatus.RUNNING, True),
        (StepStatus.DONE, StepStatus.RUNNING, False),
        (StepStatus.SKIPPED, StepStatus.RUNNING, False),
    ],
)
def test_step_transitions(old, new, legal) -> None:
    record = StepRecord("x", old)
    if legal:
        assert record.advance(new, now=1.0, epoch=1).status is new
    else:
        with pytest.raises(IllegalTransition):
            record.advance(new, now=1.0, epoch=1)


@pytest.mark.parametrize(
    ("finished_phases", "where", "rollback"),
    [
        ((), "dc1 is still active: nothing was changed yet", True),
        (("preflight", "readiness"), "dc1 is still active: nothing was changed yet", True),
        (
            ("preflight", "readiness", "disable-application", "unmount", "final-sync"),
            "dc1 still holds the data, but its application may be stopped and its volumes unmounted; the mirrors towards dc2 are intact",
            True,
        ),
        (
            (
                "preflight",
                "readiness",
                "disable-application",
                "unmount",
                "final-sync",
                "break-mirrors",
            ),
            "half-way: the mirrors towards dc2 may be broken and neither site may serve; dc1's copy is the newest",
            False,
        ),
        (
            (
                "preflight",
                "readiness",
                "disable-application",
                "final-sync",
                "break-mirrors",
                "unmount",
                "mount",
            ),
            "dc2 holds the data (volumes mounted there) but DNS may still point at dc1",
            False,
        ),
        (
            (
                "preflight",
                "readiness",
                "disable-application",
                "final-sync",
                "break-mirrors",
                "unmount",
                "mount",
                "dns",
            ),
            "dc2 holds the data and DNS points at it; its services are not all verified",
            False,
        ),
    ],
)
def test_where_the_service_is_after_a_stop(topo, finished_phases, where, rollback) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    records = {
        s.id: StepRecord(s.id, StepStatus.DONE)
        for s in plan.steps()
        if s.phase.value in finished_phases
    }
    assert where_is_the_service(plan, records) == where
    assert (
        "roll back: mount the volumes and start the application on dc1"
        in recovery_advice(plan, records, "op")
    ) is rollback


@pytest.mark.parametrize(
    ("finished", "where"),
    [
        (0, "dc1 is active and serves: nothing was changed yet"),
        (1, "dc1 is active and serves; its protection towards dc2 is half-done"),
        (None, "dc1 is active and protects towards dc2"),
    ],
)
def test_where_a_reprotect_leaves_the_service(topo, finished, where) -> None:
    """A reprotect never stops the active site: it is never "still" active as if a move
    had begun, and there is nothing to roll back."""
    plan = build_reprotect_plan(topo, assumed_state(topo))
    steps = list(plan.steps())[:finished] if finished is not None else list(plan.steps())
    records = {s.id: StepRecord(s.id, StepStatus.DONE) for s in steps}
    assert where_is_the_service(plan, records) == where
    advice = recovery_advice(plan, records, "op")
    assert advice.startswith("`sitectl resume op` continues")
    assert "roll back" not in advice and "dc1 is not affected" in advice


def test_the_digest_changes_when_the_plan_does(topo) -> None:
    a = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    b = build_plan(topo, assumed_state(topo, frozenset({"dc1"})), "failover", "dc2")
    assert plan_digest(a) == plan_digest(build_plan(topo, assumed_state(topo), "switchover", "dc2"))
    assert plan_digest(a) != plan_digest(b)


def test_a_refusal_before_any_change_ends_the_operation(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path, "failover", frozenset({"dc1"}))
    handler = ScriptedHandler(
        always={"readiness/gate": Failed("volume mirror mailstore lags 40 s")}
    )

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.REFUSED
    assert result.message == "refused before any change: volume mirror mailstore lags 40 s"
    assert store.current is None, "a refused operation must not block the next one"
    assert set(handler.applied) == {s.id for s in plan.groups[0].steps}  # only the checks ran


def _reprotect(topo: Topology):
    plan = build_reprotect_plan(topo, assumed_state(topo))
    op = operation_record(plan)
    return plan, op, MemoryStore(ops={op.id: (op, 0)}, current=op.id)


LEFT = "dc2 holds what the active site lacks and salvage could not carry: 1 object(s)"


def test_a_reprotect_refused_by_its_salvage_decision_leaves_the_mirrors_untouched(
    topo, tmp_path
) -> None:
    """The standby's application was already stopped and salvage only added to the active
    site: the refusal ends the operation (exit 4), so a rerun with --discard-divergent
    may start at once."""
    plan, op, store = _reprotect(topo)
    stops = {s.id for s in plan.steps() if s.action is Action.APP_STOP}
    handler = ScriptedHandler(already=stops, always={"salvage/decide": Failed(LEFT)})

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.REFUSED
    assert result.message == f"refused before the mirrors were touched: {LEFT}"
    assert store.current is None
    statuses = _statuses(store, op.id)
    assert not [s for s in plan.steps() if s.action is Action.MIRROR_REVERSE and s.id in statuses]


def test_a_reprotect_that_stopped_the_standby_and_then_is_refused_stays_open(
    topo, tmp_path
) -> None:
    """Stopping an application that ran is a change: the refusal is a failure to resume
    (after salvaging by hand) or abort."""
    plan, op, store = _reprotect(topo)
    handler = ScriptedHandler(always={"salvage/decide": Failed(LEFT)})

    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)

    assert result.status is OpStatus.FAILED
    assert result.failed_step == "salvage/decide"
    assert store.current == op.id


def test_a_failure_after_a_change_keeps_the_operation_open(topo, tmp_path) -> None:
    plan, op, store = _setup(topo, tmp_path)
    handler = ScriptedHandler(always={"unmount/dc1/mailstore1": Failed("umount: busy")})
    result = _executor(plan, topo, store, handler, tmp_path).run(op.id)
    assert result.status is OpStatus.FAILED
    assert store.current == op.id
