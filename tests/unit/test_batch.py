"""Consecutive playbook steps in one ansible-playbook run: which steps share a run (pure),
and what the run's gates decide — real ansible-playbook runs on local hosts, with the
executor's in-memory store and fence (tests/unit/engine_fakes.py)."""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.adapters import ansible_worker
from orchestrator.adapters.ansible import PlaybookCall, shared_run_environment
from orchestrator.audit import AuditLog
from orchestrator.config import Topology, load_topology
from orchestrator.engine.batch import BatchRun, Unit, batch_chain
from orchestrator.engine.executor import Executor
from orchestrator.engine.records import OperationRecord, OpStatus, StepRecord, StepStatus
from orchestrator.engine.runstate import RunState
from orchestrator.engine.steps import default_handlers
from orchestrator.engine.steps.common import PlaybookStep
from orchestrator.errors import Failed, LeaseLost, Unavailable
from orchestrator.plan import Action, Phase, Plan, assumed_state, build_plan
from orchestrator.plan.model import Step
from tests.unit.engine_fakes import FakeFence, MemoryStore, ScriptedHandler, operation_record
from tests.unit.local_hosts import local_inventory

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"
HOST_STEPS = {
    Phase.DISABLE_APPLICATION,
    Phase.UNMOUNT,
    Phase.FINAL_SYNC,
    Phase.BREAK_MIRRORS,
    Phase.MOUNT,
}


@pytest.fixture(scope="module")
def topo() -> Topology:
    # The example without its own step (custom/zimbra-move-identity): an operator's step
    # runs on its own and ends a shared run by design (test_custom_steps); these tests
    # are about how sitectl's own steps share one. Without pre-syncs too: they are the
    # run's first steps when a switchover plans them (test_pre_syncs_open_the_run).
    example = load_topology(EXAMPLE)
    policy = example.policy.model_copy(update={"pre_sync_above": None})
    return example.model_copy(update={"custom_steps": (), "policy": policy})


def _plan(topo: Topology, mode: str = "switchover", unreachable=frozenset()) -> Plan:
    return build_plan(topo, assumed_state(topo, unreachable), mode, "dc2")


def _index(plan: Plan, phase: Phase) -> int:
    return next(i for i, g in enumerate(plan.groups) if g.phase is phase)


def _done(*ids: str) -> dict[str, StepRecord]:
    return {i: StepRecord(step_id=i, status=StepStatus.DONE) for i in ids}


HANDLERS = default_handlers(lambda site: None)


def _playbook_steps(units: list[Unit]) -> list[Step]:
    """Every playbook step of the units, in plan order (a unit's siblings after it)."""
    return [s for u in units if u.playbook for s in (u.steps[0], *u.side)]


def test_a_switchover_shares_one_run_from_the_stops_to_the_starts(topo) -> None:
    plan = _plan(topo)
    start = _index(plan, Phase.DISABLE_APPLICATION) + 1  # after the canary
    units = batch_chain(plan, start, {}, HANDLERS)
    host_steps = [
        s
        for s in plan.steps()
        if (s.phase in HOST_STEPS or s.phase is Phase.START_SERVICES)
        and s.action is not Action.WRITE_CANARY
    ]
    assert [s.id for s in _playbook_steps(units)] == [s.id for s in host_steps], "plan order"
    # DNS runs in sitectl while the playbook waits at its gate, as one unit (its zones
    # still in parallel), and so do the ticket's release after the unmounts and its
    # grant before the starts; the stretch ends with the last start, before the verifies.
    python = [u for u in units if not u.playbook]
    assert [[s.id for s in u.steps] for u in python] == [
        ["ticket/release/dc1"],
        ["dns/corp.example.net.", "dns/example.com."],
        ["ticket/grant/dc2"],
    ]
    assert units[-1].steps[0].phase is Phase.START_SERVICES


@pytest.mark.parametrize(
    ("phase", "prelude"),
    [
        # Pre-flight, the gate and the canary run while ansible-playbook starts.
        (Phase.PREFLIGHT, [Phase.PREFLIGHT, Phase.READINESS, Phase.DISABLE_APPLICATION]),
        (Phase.READINESS, [Phase.READINESS, Phase.DISABLE_APPLICATION]),
        (Phase.DNS, [Phase.DNS, Phase.TICKET]),  # the grant, before the starts
    ],
)
def test_groups_before_the_first_playbook_step_are_the_prelude(topo, phase, prelude) -> None:
    plan = _plan(topo)
    units = batch_chain(plan, _index(plan, phase), {}, HANDLERS)
    first = next(i for i, u in enumerate(units) if u.playbook)
    assert [u.steps[0].phase for u in units[:first]] == prelude
    assert units[-1].steps[0].phase is Phase.START_SERVICES


def test_pre_syncs_open_the_run_and_the_canary_waits_for_them(topo) -> None:
    policy = topo.policy.model_copy(update={"pre_sync_above": 30.0})
    plan = _plan(topo.model_copy(update={"policy": policy}))
    units = batch_chain(plan, 0, {}, HANDLERS)
    first = next(i for i, u in enumerate(units) if u.playbook)
    # Pre-flight and the gate run while ansible-playbook starts; the pre-syncs, side by
    # side, are its first steps; sitectl writes the canary while it waits, then the stops.
    assert [u.steps[0].phase for u in units[:first]] == [Phase.PREFLIGHT, Phase.READINESS]
    pre_syncs = [s.id for s in (*units[first].steps, *units[first].side)]
    assert pre_syncs == [s.id for s in plan.steps() if s.phase is Phase.PRE_SYNC]
    assert not units[first + 1].playbook
    assert units[first + 1].steps[0].action is Action.WRITE_CANARY
    assert units[first + 2].steps[0].id == "disable-application/dc1/mta"


def test_no_shared_run_once_the_playbook_steps_are_over(topo) -> None:
    plan = _plan(topo)
    assert batch_chain(plan, _index(plan, Phase.VERIFY), {}, HANDLERS) == []


def test_finished_steps_are_left_out_and_solo_steps_run_by_sitectl(topo) -> None:
    plan = _plan(topo)
    start = _index(plan, Phase.DISABLE_APPLICATION) + 1
    full = _playbook_steps(batch_chain(plan, start, {}, HANDLERS))
    finished = _done(full[0].id)
    assert _playbook_steps(batch_chain(plan, start, finished, HANDLERS)) == full[1:]
    # A step given back to run alone makes its group one that sitectl runs itself.
    solo = next(s for s in full if s.phase is Phase.MOUNT)
    units = batch_chain(plan, start, {}, HANDLERS, solo={solo.id})
    assert solo not in _playbook_steps(units)
    assert any(solo in u.steps for u in units if not u.playbook)


def test_one_playbook_step_is_not_worth_a_shared_run(topo) -> None:
    plan = _plan(topo)
    starts = [s for s in plan.steps() if s.phase is Phase.START_SERVICES]
    finished = _done(*(s.id for s in plan.steps() if s not in starts[-1:]))
    assert batch_chain(plan, _index(plan, Phase.START_SERVICES), finished, HANDLERS) == []


def test_old_site_steps_of_a_failover_stay_on_their_own(topo) -> None:
    plan = _plan(topo, mode="failover")
    old = {s.id for s in plan.steps() if s.site == "dc1" and s.if_unreachable == "skip"}
    assert old, "the failover plan has old-site steps"
    for index in range(len(plan.groups)):
        playbook = {s.id for s in _playbook_steps(batch_chain(plan, index, {}, HANDLERS))}
        assert not playbook & old


# -- real runs -------------------------------------------------------------------------

MARK = """- name: "mark {{ mark }}"
  hosts: "{{ sitectl_hosts | default('all') }}"
  gather_facts: false
  tasks:
    - name: write the mark
      ansible.builtin.shell: "echo {{ inventory_hostname }} >> {{ mark }}; exit {{ rc | default(0) }}"
"""


@dataclass
class MarkStep(PlaybookStep):
    """A playbook step that appends the host's name to a file per step."""

    root: Path
    hosts: dict[str, tuple[str, ...]]
    already: set[str] = field(default_factory=set)
    verify_errors: dict[str, Exception] = field(default_factory=dict)
    rcs: dict[str, int] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)

    def mark(self, step: Step) -> Path:
        return self.root / (step.id.replace("/", "_") + ".mark")

    def call(self, step: Step, ctx: Any) -> PlaybookCall:
        return PlaybookCall(
            playbook=self.root / "mark.yml",
            hosts=self.hosts.get(step.id, ("h1",)),
            extravars={"mark": str(self.mark(step)), "rc": self.rcs.get(step.id, 0)},
        )

    def starting(self, step: Step, ctx: Any) -> None:
        self.started.append(step.id)

    def check(self, step: Step, ctx: Any) -> bool:
        return step.id in self.already

    def verify(self, step: Step, ctx: Any) -> None:
        if step.id in self.verify_errors:
            raise self.verify_errors[step.id]
        if not self.mark(step).exists():
            raise Failed(f"{step.id} left no mark")


def _warm() -> None:
    """The leading controller's warm ansible-playbook, ready before the run."""
    worker = ansible_worker.start(shared_run_environment)
    deadline = time.monotonic() + 60
    while not worker.socket.exists():
        assert worker.alive() and time.monotonic() < deadline, "the warm worker never got ready"
        time.sleep(0.05)


# A cold ansible-playbook unless a test asks for both (BOTH): the controller's warm one
# must keep every guarantee a shared run gives.
BOTH = pytest.mark.parametrize("local", ["cold", "warm"], indirect=True)


@pytest.fixture
def local(request: pytest.FixtureRequest, tmp_path: Path, topo: Topology) -> Iterator[Topology]:
    warm = getattr(request, "param", "cold") == "warm"
    if warm:
        _warm()
    (tmp_path / "mark.yml").write_text(MARK)
    local_inventory(tmp_path, ("h1", "h2"))
    ansible = topo.ansible.model_copy(update={"inventory": str(tmp_path / "hosts.yml")})
    try:
        yield topo.model_copy(update={"ansible": ansible})
    finally:
        ansible_worker.stop()
    if warm:  # the runs really went through the worker
        commands = [json.loads(f.read_text()) for f in tmp_path.rglob("artifacts/*/command")]
        assert commands and all(str(ansible_worker.SHIM) in c["command"] for c in commands)


@dataclass
class Run:
    plan: Plan
    op: OperationRecord
    store: MemoryStore
    executor: Executor
    units: list[Unit]


def _run(
    topo: Topology,
    tmp_path: Path,
    handler: MarkStep,
    fence: FakeFence | None = None,
    others: ScriptedHandler | None = None,
    start: Phase = Phase.DISABLE_APPLICATION,
) -> Run:
    plan = _plan(topo)
    op = operation_record(plan, "20261122T200000Z-ba7c", reason="batch test")
    store = MemoryStore(ops={op.id: (op, 0)}, current=op.id)
    handlers: dict[Action, Any] = dict.fromkeys(Action, others or ScriptedHandler())
    handlers |= {a: handler for a, h in HANDLERS.items() if isinstance(h, PlaybookStep)}
    executor = Executor(
        plan=plan,
        topology=topo,
        store=store,
        lease=fence or FakeFence(),
        handlers=handlers,
        audit=AuditLog(tmp_path / "audit.jsonl"),
        artifacts=tmp_path / "artifacts",
        sleep=lambda _: None,
    )
    first = _index(plan, start) + (1 if start is Phase.DISABLE_APPLICATION else 0)
    units = batch_chain(plan, first, {}, handlers)
    return Run(plan, op, store, executor, units)


def _status(store: MemoryStore, op: OperationRecord) -> dict[str, StepRecord]:
    return {k: r for k, (r, _) in store.steps(op.id).items()}


@BOTH
def test_a_chain_runs_in_one_playbook_run_with_a_checkpoint_per_step(
    local, tmp_path, caplog
) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    chain = _playbook_steps(run.units)
    handler.hosts = {chain[1].id: ("h1", "h2")}
    handler.already = {chain[2].id}
    caplog.set_level(logging.INFO, "sitectl.engine")

    batch = BatchRun(run.executor, run.op, run.units, {}, {}, set())
    failed = batch.run()

    assert failed is None
    assert batch.state is RunState.ENDED
    records = _status(run.store, run.op)
    assert [records[s.id].status for s in chain] == [StepStatus.DONE] * len(chain)
    assert records[chain[2].id].detail == "already true"
    assert not handler.mark(chain[2]).exists(), "an already-true step is not applied"
    # Not even skipped task by task (a worker fork each): its plays matched no host.
    run.executor.wound_down()  # ansible-runner writes its last events as it ends
    events = [
        json.loads(e.read_text())
        for e in (tmp_path / "artifacts").glob("*/artifacts/*/job_events/*.json")
    ]
    plays_with_tasks = {
        e["event_data"].get("play") for e in events if e.get("event") == "runner_on_start"
    }
    assert f"mark {handler.mark(chain[1])}" in plays_with_tasks
    assert f"mark {handler.mark(chain[2])}" not in plays_with_tasks
    assert sorted(handler.mark(chain[1]).read_text().split()) == ["h1", "h2"]
    group_of = {s.id: g for g, group in enumerate(run.plan.groups) for s in group.steps}
    # A group's siblings run side by side, each in a lane; groups stay in plan order.
    assert sorted(handler.started) == sorted(s.id for s in chain if s is not chain[2])
    assert [group_of[i] for i in handler.started] == sorted(group_of[i] for i in handler.started)
    lanes = max(1 + len(u.side) for u in run.units)
    assert lanes == 6, "the example's six volumes are unmounted, broken and mounted at once"
    first = "batch-" + chain[0].id.replace("/", "%2F")
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == [
        first,
        *[f"{first}-lane{n}" for n in range(1, 6)],
    ], "one playbook run per lane"
    # Each playbook step checkpointed as running before its plays and done after them;
    # every step of a group done before the next group's first starts (the DNS group
    # ran in sitectl between the mounts and the starts).
    ids = {s.id for s in chain}
    order = [(w.step_id, w.status) for w in run.store.writes if w.step_id in ids]
    assert sorted(order) == sorted(
        (s.id, status) for s in chain for status in (StepStatus.RUNNING, StepStatus.DONE)
    )
    for step in chain:
        assert order.index((step.id, StepStatus.RUNNING)) < order.index((step.id, StepStatus.DONE))
    for (sid, _), (later, later_status) in itertools.pairwise(order):
        if later_status is StepStatus.RUNNING and group_of[later] > group_of[sid]:
            done_before = {
                i for i, st in order[: order.index((later, later_status))] if st is StepStatus.DONE
            }
            earlier = {s.id for s in chain if group_of[s.id] < group_of[later]}
            assert earlier <= done_before, f"{later} started before its group's predecessors ended"
    everything = [s for u in run.units for s in (*u.steps, *u.side)]
    assert all(records[s.id].status is StepStatus.DONE for s in everything)
    assert f"running {len(everything)} steps in 6 side-by-side playbook runs" in caplog.text


def test_a_failed_verify_stops_the_run_before_the_next_step(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    chain = _playbook_steps(run.units)
    handler.verify_errors = {chain[1].id: Failed("the MTA still answers on dc1")}

    batch = BatchRun(run.executor, run.op, run.units, {}, {}, set())
    failed = batch.run()

    assert batch.state is RunState.STOPPED and batch.cause == failed
    assert failed is not None and failed.step_id == chain[1].id
    assert failed.detail == "the MTA still answers on dc1"
    records = _status(run.store, run.op)
    assert records[chain[0].id].status is StepStatus.DONE
    assert chain[2].id not in records, "the next step never started"
    assert not handler.mark(chain[2]).exists()


@BOTH
def test_a_failed_task_fails_its_step_naming_host_and_task(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    chain = _playbook_steps(run.units)
    assert chain[1] in run.units[0].side, "a step in a lane beside the group's first"
    handler.rcs = {chain[1].id: 3}

    failed = BatchRun(run.executor, run.op, run.units, {}, {}, set()).run()

    assert failed is not None and failed.step_id == chain[1].id
    assert failed.status is StepStatus.FAILED
    assert "h1: write the mark" in (failed.detail or "")
    assert chain[2].id not in _status(run.store, run.op)


@BOTH
def test_a_temporary_failure_gives_the_step_back_to_run_alone(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    chain = _playbook_steps(run.units)
    assert chain[1] in run.units[0].side, "a step in a lane beside the group's first"
    handler.rcs = {chain[1].id: 75}  # EX_TEMPFAIL: the storage CLI's "try again"
    solo: set[str] = set()

    failed = BatchRun(run.executor, run.op, run.units, {}, {}, solo).run()

    assert failed is None
    assert solo == {chain[1].id}
    assert _status(run.store, run.op)[chain[1].id].status is StepStatus.RUNNING, "left to resume"
    # The next shared run gives it to sitectl first, to run on its own with its retries
    # while ansible-playbook starts; the steps after it share that run again.
    rest = batch_chain(
        run.plan,
        _index(run.plan, Phase.DISABLE_APPLICATION) + 1,
        _status(run.store, run.op),
        run.executor.handlers,
        solo,
    )
    assert not rest[0].playbook and chain[1] in rest[0].steps
    assert chain[1] not in _playbook_steps(rest)
    assert _playbook_steps(rest)[0] == chain[2]


def test_a_host_missing_from_the_inventory_fails_the_step(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    chain = _playbook_steps(run.units)
    assert chain[1] in run.units[0].side, "a step in a lane beside the group's first"
    handler.hosts = {chain[1].id: ("h1", "ghost")}

    failed = BatchRun(run.executor, run.op, run.units, {}, {}, set()).run()

    assert failed is not None and failed.step_id == chain[1].id
    assert failed.detail == "host(s) ghost not in the inventory"
    assert not handler.mark(chain[1]).exists()


@BOTH
def test_a_lost_lease_at_a_gate_starts_nothing_more(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    # A step checks the lease before its running checkpoint, before its plays and at
    # each of its two checkpoint writes: the second step's running checkpoint is refused.
    fence = FakeFence(lost_after_ensures=5)
    run = _run(local, tmp_path, handler, fence)
    chain = _playbook_steps(run.units)

    with pytest.raises(LeaseLost):
        BatchRun(run.executor, run.op, run.units, {}, {}, set()).run()

    assert handler.mark(chain[0]).exists()
    assert [m.name for m in tmp_path.glob("*.mark")] == [handler.mark(chain[0]).name]


def test_the_executor_runs_a_whole_switchover_in_few_playbook_runs(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)

    result = run.executor.run(run.op.id)

    assert result.status is OpStatus.SUCCEEDED
    playbook_steps = [s for s in run.plan.steps() if run.executor.handlers[s.action] is handler]
    assert all(handler.mark(s).exists() for s in playbook_steps)
    runs = sorted(p.name for p in (tmp_path / "artifacts").iterdir())
    # The stops to the starts, DNS run by sitectl between: one run, plus a lane for each
    # further step of the widest group (the example's six volumes, three per mailbox server).
    assert len(runs) == 6, runs
    assert len(playbook_steps) > 10


def test_a_refusal_in_the_prelude_starts_no_playbook_step(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    refusal = Failed("dc2 would lose 42 s of LDAP changes, over the 10 s limit")
    others = ScriptedHandler(always={"readiness/gate": refusal})
    run = _run(local, tmp_path, handler, others=others, start=Phase.PREFLIGHT)

    failed = BatchRun(run.executor, run.op, run.units, {}, {}, set()).run()

    assert failed is not None and failed.step_id == "readiness/gate"
    assert failed.detail == str(refusal)
    assert handler.started == [] and not list(tmp_path.glob("*.mark"))
    assert _status(run.store, run.op)["preflight/ldap"].status is StepStatus.DONE


@BOTH
def test_an_abort_stops_the_run_at_the_next_gate(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)

    def abort_while_first_step_runs(step: Step, ctx: Any) -> None:
        handler.started.append(step.id)
        run.store.aborted_by = "ops@console"

    handler.starting = abort_while_first_step_runs  # type: ignore[method-assign]
    result = run.executor.run(run.op.id)

    assert result.status is OpStatus.ABORTED
    assert (result.message or "").startswith("aborted by ops@console")
    records = _status(run.store, run.op)
    under_way = (*run.units[0].steps, *run.units[0].side)
    assert len(under_way) > 1, "the first group has steps side by side"
    assert all(records[s.id].status is StepStatus.DONE for s in under_way), (
        "the group under way finished"
    )
    following = run.units[1].steps[0]
    assert following.id not in records
    assert not handler.mark(following).exists()


@pytest.mark.parametrize("where", ["readiness/gate", "mount/dc2/mailstore1"])
def test_a_store_failure_stops_the_run_and_is_raised(local, tmp_path, where) -> None:
    """ZooKeeper failing under a checkpoint, in the prelude or at a gate, ends the run
    before the next playbook step and reaches the caller as the executor would raise it."""
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler, start=Phase.PREFLIGHT)
    chain = _playbook_steps(run.units)
    write = run.store.write_step

    def failing(lease: Any, op_id: str, record: StepRecord, version: int | None) -> int:
        if record.step_id == where:
            raise Unavailable("ZooKeeper did not answer")
        return write(lease, op_id, record, version)

    run.store.write_step = failing  # type: ignore[method-assign]
    with pytest.raises(Unavailable, match="ZooKeeper did not answer"):
        BatchRun(run.executor, run.op, run.units, {}, {}, set()).run()

    later = chain[[s.id for s in chain].index(where) :] if where in {s.id for s in chain} else chain
    assert not any(handler.mark(s).exists() for s in later)


def test_siblings_already_true_get_no_lane(local, tmp_path) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    siblings = [s for u in run.units for s in u.side]
    handler.already = {s.id for s in siblings}

    failed = BatchRun(run.executor, run.op, run.units, {}, {}, set()).run()

    assert failed is None
    first = "batch-" + run.units[0].name.replace("/", "%2F")
    assert [p.name for p in (tmp_path / "artifacts").iterdir()] == [first], "no lane started"
    records = _status(run.store, run.op)
    assert all(records[s.id].detail == "already true" for s in siblings)
    assert not any(handler.mark(s).exists() for s in siblings)


def test_a_sibling_no_longer_true_at_its_turn_runs_on_its_own(local, tmp_path, caplog) -> None:
    handler = MarkStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    sibling = run.units[0].side[0]
    asked: list[str] = []

    def true_only_when_first_asked(step: Step, ctx: Any) -> bool:
        asked.append(step.id)
        return step.id == sibling.id and asked.count(step.id) == 1

    handler.check = true_only_when_first_asked  # type: ignore[method-assign]
    caplog.set_level(logging.INFO, "sitectl.engine")

    result = run.executor.run(run.op.id)

    assert result.status is OpStatus.SUCCEEDED
    assert handler.mark(sibling).exists(), "it ran after all"
    assert _status(run.store, run.op)[sibling.id].detail == "applied and verified"
    assert f"{sibling.id} is no longer true and runs on its own" in caplog.text
    following = run.units[1].steps[0]
    assert handler.started.index(sibling.id) < handler.started.index(following.id), (
        "its group ended before the next began"
    )
