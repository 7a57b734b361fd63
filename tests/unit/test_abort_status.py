"""`sitectl abort`, `status` and the confirmation prompt, on the in-memory store
(tests/unit/engine_fakes.py): no ZooKeeper, no lab, no sleeping. The lease is a fake that
someone else holds until a test lets it go."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from orchestrator import statustable
from orchestrator.audit import AuditLog
from orchestrator.cli import operations as cli_operations
from orchestrator.cli import status as cli_status
from orchestrator.cli.main import app
from orchestrator.config import Topology, load_topology
from orchestrator.config.model import Notifications, NotifyTarget
from orchestrator.engine import operation as engine
from orchestrator.engine.executor import Executor
from orchestrator.engine.records import OpStatus, StepRecord, StepStatus
from orchestrator.errors import Locked
from orchestrator.plan import Action, Phase, Plan, assumed_state, build_plan
from tests.unit.engine_fakes import FakeFence, MemoryStore, ScriptedHandler, operation_record
from tests.webhook import receiving

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"
ME = "carol@laptop:4242"
HOLDER = "ops@box:77"
runner = CliRunner()


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(EXAMPLE)


@dataclass
class LeaseState:
    holder: str | None = HOLDER  # who holds the operation lease; None: free
    taken: int = 0


@dataclass
class Setup:
    plan: Plan
    store: MemoryStore
    session: engine.Session
    lease: LeaseState
    op_id: str


@pytest.fixture
def setup(topo, tmp_path, monkeypatch) -> Setup:
    """A switchover dc1→dc2 running in another process (which holds the lease), its
    steps done up to and including the mounts on dc2."""
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    op = replace(operation_record(plan, reason="quarterly drill"), status=OpStatus.RUNNING)
    store = MemoryStore(ops={op.id: (op, 0)}, current=op.id)
    done_until = [p for p in Phase].index(Phase.MOUNT)
    store.step_records[op.id] = {
        s.id: (StepRecord(step_id=s.id, status=StepStatus.DONE), 0)
        for s in plan.steps()
        if [p for p in Phase].index(s.phase) <= done_until
    }
    lease = LeaseState()

    class FakeLease:
        def __init__(self, client: Any, paths: Any, who: str) -> None:
            self.epoch = 0

        def acquire(self, wait: float = 0.0) -> int:
            if lease.holder is not None:
                raise Locked(lease.holder)
            lease.taken += 1
            self.epoch = 9
            return self.epoch

        def ensure(self) -> None:
            pass

        def interrupted(self) -> str | None:
            return None

        def release(self) -> None:
            pass

    monkeypatch.setattr(engine, "Lease", FakeLease)
    monkeypatch.setattr(engine, "identity", lambda: ME)
    monkeypatch.setenv("SITECTL_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    session = engine.Session(topology=topo, client=None, store=store)  # type: ignore[arg-type]
    return Setup(plan, store, session, lease, op.id)


@dataclass
class FakeTime:
    now: float = 0.0
    slept: float = 0.0
    naps: int = 0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        self.naps += 1


def _holder_sees_the_abort(setup: Setup, tmp_path: Path) -> None:
    """The running process reaches its next safe point: its executor sees the request."""
    executor = Executor(
        plan=setup.plan,
        topology=setup.session.topology,
        store=setup.store,
        lease=FakeFence(),
        handlers=dict.fromkeys(Action, ScriptedHandler()),
        audit=AuditLog(tmp_path / "holder-audit.jsonl"),
        artifacts=tmp_path,
        clock=lambda: 2000.0,
        sleep=lambda _: None,
    )
    executor.run(setup.op_id)
    setup.lease.holder = None


def test_abort_waits_for_the_running_operation_and_says_what_is_half_done(setup, tmp_path) -> None:
    fake = FakeTime()

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if fake.naps == 3:  # the step under way took a while
            _holder_sees_the_abort(setup, tmp_path)

    result = engine.abort_operation(setup.session, wait=60, clock=fake.clock, sleep=sleep)

    assert result.stopped
    assert result.message == (
        f"operation {setup.op_id} aborted: aborted by {ME}: dc2 holds the data (volumes "
        "mounted there) but DNS may still point at dc1; to go forward, run `sitectl "
        "switchover --to dc2` again: it skips what is already done; rolling back now "
        "would need the mirrors reversed, so go forward"
    )
    assert fake.naps == 3 and fake.slept < 60
    assert setup.store.ops[setup.op_id][0].status is OpStatus.ABORTED
    assert setup.lease.taken == 0, "the holder closed it: abort wrote nothing itself"
    assert setup.store.current is None, "over: status no longer shows it in progress"


def test_abort_that_times_out_says_it_was_requested_and_what_to_run(setup) -> None:
    fake = FakeTime()

    result = engine.abort_operation(setup.session, wait=5, clock=fake.clock, sleep=fake.sleep)

    assert not result.stopped
    assert result.message == (
        f"abort requested, but operation {setup.op_id} had not stopped after 5 s: it stops "
        "at its next safe point, once the step under way has finished. `sitectl status` "
        "shows when it has, which site is active and what is left half-done."
    )
    assert fake.slept == pytest.approx(5), "bounded by --wait"
    assert setup.store.aborted_by == ME, "the request stays for the holder to see"
    assert setup.store.ops[setup.op_id][0].status is OpStatus.RUNNING


def test_abort_with_no_wait_only_requests(setup) -> None:
    fake = FakeTime()

    result = engine.abort_operation(setup.session, wait=0, clock=fake.clock, sleep=fake.sleep)

    assert not result.stopped and fake.naps == 0
    assert result.message.startswith("abort requested: it stops at its next safe point")
    assert setup.store.aborted_by == ME


def test_abort_closes_the_operation_itself_once_a_killed_holder_lets_go(setup) -> None:
    fake = FakeTime()

    def sleep(seconds: float) -> None:
        fake.sleep(seconds)
        if fake.naps == 2:  # the killed sitectl's session expired: its lock is gone
            setup.lease.holder = None

    result = engine.abort_operation(setup.session, wait=60, clock=fake.clock, sleep=sleep)

    assert result.stopped and setup.lease.taken == 1
    op = setup.store.ops[setup.op_id][0]
    assert op.status is OpStatus.ABORTED
    assert result.message == f"operation {setup.op_id} aborted: {op.message}"
    assert op.message.startswith(f"aborted by {ME}: dc2 holds the data (volumes mounted")
    assert "run `sitectl switchover --to dc2` again" in op.message
    assert setup.store.current is None


def test_abort_before_any_change_says_there_is_nothing_to_roll_back(setup) -> None:
    setup.store.step_records[setup.op_id] = {}
    setup.lease.holder = None

    result = engine.abort_operation(setup.session, wait=60, sleep=lambda _: None)

    assert result.message == (
        f"operation {setup.op_id} aborted: aborted by {ME}: dc1 is still active: nothing "
        "was changed yet; nothing to roll back; `sitectl switchover --to dc2` starts it again"
    )


@contextmanager
def _cli_session(setup: Setup) -> Iterator[engine.Session]:
    yield setup.session


@pytest.mark.parametrize(
    ("stopped", "wait", "code"),
    [(True, "60", 0), (False, "60", 3), (False, "0", 0)],
)
def test_abort_exit_codes(setup, monkeypatch, stopped, wait, code) -> None:
    seen: dict[str, Any] = {}

    def abort(s: Any, op_id: str | None, *, wait: float, now: bool = False) -> engine.AbortResult:
        seen["wait"] = wait
        return engine.AbortResult(stopped, "the operation's sentence")

    monkeypatch.setattr(engine, "session", lambda topo: _cli_session(setup))
    monkeypatch.setattr(engine, "abort_operation", abort)

    result = runner.invoke(app, ["abort", "-c", str(EXAMPLE), "--wait", wait])

    assert result.exit_code == code, result.output
    assert seen["wait"] == float(wait)
    assert "the operation's sentence" in result.stdout


def test_status_shows_when_it_started_and_the_accepted_data_loss(setup, capsys) -> None:
    reason = "dc1 lost power; its last minute of mail is gone"
    op, version = setup.store.ops[setup.op_id]
    setup.store.ops[setup.op_id] = (replace(op, accept_data_loss=reason), version)

    info = engine.describe(setup.session)

    assert info.to_json()["operation"]["accept_data_loss"] == reason
    assert info.to_json()["operation"]["started"] == 1000.0
    sites = {name: site.kind for name, site in setup.session.topology.sites.items()}
    cli_status.console.print(cli_status.render(replace(info, controllers=()), sites, 2000.0))
    out = capsys.readouterr().out
    assert f"started {statustable.when(1000.0)} by ops" in out
    assert statustable.when(1000.0).startswith("1970-01-01")
    assert f"data loss accepted: {reason}\n" in out


def test_the_json_outcome_carries_the_accepted_data_loss(setup) -> None:
    reason = "dc1 lost power"
    op = replace(setup.store.ops[setup.op_id][0], accept_data_loss=reason)

    outcome = engine.Outcome(op=op, plan=setup.plan).view().to_json()

    assert json.loads(json.dumps(outcome))["accept_data_loss"] == reason


@pytest.fixture
def planned(setup, monkeypatch) -> list[str]:
    """`switchover` up to the prompt: the plan is `setup`'s; starting is only recorded."""
    started: list[str] = []
    monkeypatch.setattr(engine, "session", lambda topo: _cli_session(setup))
    monkeypatch.setattr(engine, "plan_operation", lambda s, mode, to: setup.plan)

    def start(s: Any, plan: Plan, **kwargs: Any) -> engine.Outcome:
        started.append(plan.to_site)
        op = replace(setup.store.ops[setup.op_id][0], status=OpStatus.SUCCEEDED)
        return engine.Outcome(op=op, plan=plan)

    monkeypatch.setattr(engine, "start_operation", start)
    return started


def test_json_without_yes_and_without_a_terminal_refuses(planned) -> None:
    result = runner.invoke(app, ["switchover", "--to", "dc2", "--json", "-c", str(EXAMPLE)])

    assert result.exit_code == 2
    assert "pass --yes" in result.stderr
    assert result.stdout == "" and planned == [], "nothing started, nothing printed"


class _Terminal:
    """What `_confirm` sees of stdin: a terminal. (The runner's own stdin, which it swaps
    in while the command runs, carries the answer.)"""

    stdin = SimpleNamespace(isatty=lambda: True)


@pytest.mark.parametrize(("answer", "code", "started"), [("y\n", 0, ["dc2"]), ("n\n", 1, [])])
def test_json_without_yes_on_a_terminal_asks_on_stderr(
    planned, monkeypatch, answer, code, started
) -> None:
    monkeypatch.setattr(cli_operations, "sys", _Terminal())

    result = runner.invoke(
        app, ["switchover", "--to", "dc2", "--json", "-c", str(EXAMPLE)], input=answer
    )

    assert result.exit_code == code, result.output
    assert "switchover" in result.stderr and "from dc1 to dc2" in result.stderr
    assert planned == started
    if started:
        assert json.loads(result.stdout)["status"] == "succeeded", "stdout is only the JSON"
    else:
        assert result.stdout == ""


def test_json_with_yes_does_not_ask(planned) -> None:
    result = runner.invoke(
        app, ["switchover", "--to", "dc2", "--json", "--yes", "-c", str(EXAMPLE)]
    )

    assert result.exit_code == 0, result.output
    assert planned == ["dc2"] and "?" not in result.stderr


def test_abort_closing_an_operation_nobody_runs_tells_the_notification_targets(setup) -> None:
    """Its last run died without a word: the abort is its end, so the abort says it."""
    setup.lease.holder = None
    with receiving() as receiver:
        told = setup.session.topology.model_copy(
            update={"notifications": Notifications(targets=(NotifyTarget(url=receiver.url),))}
        )
        session = engine.Session(topology=told, client=None, store=setup.store)  # type: ignore[arg-type]
        result = engine.abort_operation(session, wait=60, sleep=lambda _: None)
        assert result.stopped
    op = setup.store.ops[setup.op_id][0]
    assert [(p["event"], p["status"], p["seq"], p["epoch"]) for p in receiver.posts] == [
        ("failed", "aborted", 1, 9)
    ]
    assert receiver.posts[0]["operation"] == setup.op_id
    assert receiver.posts[0]["detail"] == op.message
