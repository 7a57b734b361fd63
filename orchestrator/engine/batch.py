"""Consecutive playbook steps in one ansible-playbook run.

Starting ansible-playbook costs about a second, and a switchover has eight host steps
(stop, unmount, final sync, break, mount, start), with DNS between the mounts and the
starts. The executor therefore hands such a stretch of the plan to one run that waits at
gates (orchestrator.gates.GatedRun; the playbook step handlers give the Ansible one,
adapters/ansible.run_batch) and keeps its guarantees per step through the run's gates.
Before each step's plays, the gate asks this module, which does what the executor does
for a step on its own: verify and checkpoint the step before, check the lease,
checkpoint this step as running, ask "already true?", check the lease again; only then
does it answer "go". Groups that are not playbooks (DNS) run here, in Python, while
ansible-playbook waits at their gate. A frozen or deposed engine therefore starts
nothing; and what already runs is killed at once when the lease is suspended or lost, an
`abort --now` is asked or the step's deadline passes (engine/cancel.py).

A step that fails ends the run and is checkpointed as failed. A step that meets
transient trouble (an unreachable host, a temporary failure) is left running and taken
out of batching, so the executor runs it on its own, with its retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from orchestrator.coordination.paths import step_file_name
from orchestrator.engine.cancel import AbortRequested, DeadlinePassed, Watch
from orchestrator.engine.groups import run_group
from orchestrator.engine.handlers import StepContext, StepHandler
from orchestrator.engine.lifecycle import StepLife
from orchestrator.engine.progress import steps_to_run
from orchestrator.engine.records import OperationRecord, StepRecord, StepStatus
from orchestrator.engine.runstate import RunEvent, RunState, advance
from orchestrator.engine.steps.common import PlaybookStep, step_timeout
from orchestrator.errors import Failed, LeaseLost, SitectlError, Unavailable
from orchestrator.gates import END_GATE, BatchItem, GateAnswer
from orchestrator.plan.model import Action, Phase, Plan, Step

log = logging.getLogger("sitectl.engine")


@dataclass(frozen=True)
class Unit:
    """One gate of a shared run: a playbook step, or a group run in Python meanwhile.

    A playbook step's parallel siblings (`side`) run beside it, each in a lane of its own:
    another ansible-playbook run started with the first, whose gate for the sibling
    opens once this unit's gate has."""

    steps: tuple[Step, ...]
    playbook: bool
    side: tuple[Step, ...] = ()

    @property
    def name(self) -> str:
        return self.steps[0].id


# Steps never carried by a shared run (see batch_chain).
_OWN_RUN = frozenset({Phase.APPROVAL, Phase.CUSTOM})


def batch_chain(
    plan: Plan,
    start: int,
    records: Mapping[str, StepRecord],
    handlers: Mapping[Action, StepHandler],
    solo: Collection[str] = (),
) -> list[Unit]:
    """The stretch of the plan from group `start` that one run may carry, or [] when
    running group `start` on its own is as good.

    A group of playbook steps gives one unit: its first step, with the others beside it
    (each in a lane: ansible-playbook runs plays one after the other, and starting a run
    per step once the group is reached costs more than the step). Any other group is one
    unit the engine runs itself, as it would outside a run, while ansible-playbook waits.
    Old-site steps of a failover and steps given back to run alone (`solo`) are not
    playbook units: each keeps its own short bound and retries. The stretch ends with its
    last playbook unit. The groups before its first playbook unit (pre-flight, the
    readiness gate) are its prelude: the engine runs them while ansible-playbook starts,
    which hides that second."""

    def shared(step: Step) -> bool:
        return (
            isinstance(handlers.get(step.action), PlaybookStep)
            and step.if_unreachable == "fail"
            and step.id not in solo
        )

    units: list[Unit] = []
    for group in plan.groups[start:]:
        pending = steps_to_run(group, records)
        if not pending:
            continue
        if any(s.phase in _OWN_RUN for s in pending):
            # A person's answer or an operator's step may take longer than a run waits
            # at a gate: the stretch ends before it, and it runs on its own.
            break
        if all(shared(s) for s in pending):
            units.append(Unit((pending[0],), playbook=True, side=tuple(pending[1:])))
        else:
            units.append(Unit(tuple(pending), playbook=False))
    while units and not units[-1].playbook:
        units.pop()
    return units if sum(1 + len(u.side) for u in units if u.playbook) > 1 else []


@dataclass
class _Going:
    step: Step
    record: StepRecord
    version: int


MAIN = 0  # the lane of the units; lane n > 0 carries each unit's n-th sibling

# Why a run stopped, by its state: the failed step's record (STOPPED), the error raised
# where the executor would have raised it (LOST, BROKEN), who asked to abort (ABORTED),
# why the run halted (HALTED).
Cause = StepRecord | BaseException | str | None


@dataclass
class Lane:
    """One ansible-playbook run of a shared run, from its start to its end."""

    number: int
    items: list[BatchItem]
    going: _Going | None = None  # the step whose plays run now
    passed: list[str] = field(default_factory=list)  # gates opened, in order
    done: set[str] = field(default_factory=set)  # steps verified and checkpointed
    over: bool = False  # its ansible-playbook ended
    error: SitectlError | None = None  # how it ended

    def take_going(self) -> _Going | None:
        going, self.going = self.going, None
        return going


@dataclass
class BatchRun:
    executor: StepLife  # the steps' lifecycle, and where the runs wind down
    op: OperationRecord
    units: list[Unit]
    records: Mapping[str, StepRecord]
    versions: Mapping[str, int]
    solo: set[str]
    state: RunState = RunState.PRELUDE
    cause: Cause = None  # why the run is in its state, if it stopped
    lanes: dict[int, Lane] = field(default_factory=dict)
    lane_of: dict[str, int] = field(default_factory=dict)  # sibling → its lane
    inline: set[str] = field(default_factory=set)  # siblings already true: no lane
    # What kills every lane's ansible-playbook at once: the lease, an abort, a deadline.
    watch: Watch | None = None
    _prelude_done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def prelude(self) -> list[Unit]:
        first = next(i for i, u in enumerate(self.units) if u.playbook)
        return self.units[:first]

    @property
    def main(self) -> Lane:
        return self.lanes[MAIN]

    def on(self, event: RunEvent, cause: Cause = None) -> None:
        """Move the run on `event`; the cause of a state is the first that led to it."""
        state = advance(self.state, event)
        if state is not self.state:
            self.state, self.cause = state, cause
            log.debug("the shared run is now %s", state)

    def run(self) -> StepRecord | None:
        """Run the stretch; return the failed step's record, if one failed."""
        self.watch = self.executor.watch(self.op)
        if not self._lay_out(self.executor.context(self.op)):
            return None  # the executor's loop runs what is left, group by group
        steps = [s for u in self.units for s in (*u.steps, *u.side)]
        bound = sum(step_timeout(self.executor.topology, s) for s in steps)
        self.executor.say(
            f"running {len(steps)} steps in "
            + (
                f"{len(self.lanes)} side-by-side playbook runs"
                if len(self.lanes) > 1
                else "one playbook run"
            )
            + ": "
            + ", ".join(s.id for s in steps)
        )
        workers = [
            threading.Thread(
                target=self._lane,
                args=(lane, bound),
                name=f"playbook-lane-{lane.number}",
                daemon=True,
            )
            for lane in self.lanes.values()
        ]
        for worker in workers:
            worker.start()
        return self._wait(workers)

    def _lay_out(self, ctx: StepContext) -> bool:
        """The lanes and their gates, for the units that can share the run; False when
        fewer than two playbook steps are left to share it."""
        items: list[BatchItem] = []
        beside: dict[int, list[BatchItem]] = {}
        self.inline = self._already_true([s for u in self.units for s in u.side], ctx)
        for unit in self.units:
            try:
                item = self._item(unit, ctx)
                siblings = [
                    BatchItem(s.id, self._handler(s).call(s, ctx))
                    for s in unit.side
                    if s.id not in self.inline
                ]
            except SitectlError:
                self.solo.update(s.id for s in (*unit.steps, *unit.side))
                break  # on its own it fails with its own message
            items.append(item)
            for number, side in enumerate(siblings, start=1):
                beside.setdefault(number, []).append(side)
                self.lane_of[side.name] = number
        self.units = self.units[: len(items)]
        while self.units and not self.units[-1].playbook:
            self.units.pop()
        if sum(1 + len(u.side) for u in self.units if u.playbook) < 2:
            return False
        kept = {s.id for u in self.units for s in u.side}
        self.lanes = {MAIN: Lane(MAIN, items[len(self.prelude) : len(self.units)])}
        for number, siblings in beside.items():
            lane_items = [i for i in siblings if i.name in kept]
            if lane_items:
                self.lanes[number] = Lane(number, lane_items)
        return True

    def _lane(self, lane: Lane, bound: float) -> None:
        """One lane's ansible-playbook run, from its start to its end (a thread)."""
        ex, topo = self.executor, self.executor.topology
        assert self.watch is not None
        error: SitectlError | None = None
        suffix = "" if lane.number == MAIN else f"-lane{lane.number}"
        first = next(u for u in self.units if u.playbook).steps[0]
        try:
            self._handler(first).gated_run()(
                lane.items,
                topo.resolve(topo.ansible.inventory),
                ex.artifacts / ("batch-" + step_file_name(self.units[0].name) + suffix),
                lambda name, after, hosts: self.gate(lane.number, name, after, hosts),
                # Checks, verifies and Python groups run while the playbook waits.
                timeout=2 * bound,
                gate_timeout=2 * bound + 30,
                on_task=ex.task_started,
                cancel=self.watch.check(),
            )
        except (Failed, Unavailable, LeaseLost, AbortRequested) as exc:
            error = exc
        except Exception as exc:  # a bug: the steps left run on their own
            log.exception("the shared playbook run broke")
            error = Failed(f"the shared playbook run broke: {exc!r}")
        self._lane_over(lane, error)

    def _wait(self, workers: list[threading.Thread]) -> StepRecord | None:
        """Run the prelude while ansible-playbook starts, then wait for the main lane."""
        try:
            self._run_prelude(self.prelude)
        except BaseException as exc:
            with self._lock:
                self.on(RunEvent.BROKE, exc)  # the gates now stop the run
            self._prelude_done.set()
            for worker in workers:
                worker.join()
            raise
        with self._lock:
            self.on(RunEvent.PRELUDE_OVER)
        self._prelude_done.set()
        with self._lock:
            self._lock.wait_for(lambda: self.state is RunState.ENDED or self.main.over)
            if self.state is RunState.ENDED:
                # Every step is verified and checkpointed; ansible-playbook only winds
                # down now. The executor goes on and joins it before its last word.
                self.executor.wind_down(workers)
                return None
        for worker in workers:
            worker.join()
        with self._lock:
            return self._conclude(self.main.error)

    def _run_prelude(self, prelude: list[Unit]) -> None:
        """Run the groups before the first playbook step while ansible-playbook starts;
        its first gate waits for them."""
        try:
            for unit in prelude:
                if self._abort_requested():
                    return
                failed = self._group(unit)
                if failed is not None:
                    with self._lock:
                        self.on(RunEvent.STEP_FAILED, failed)
                    return
        except LeaseLost as exc:
            with self._lock:
                self.on(RunEvent.LEASE_LOST, exc)

    def _item(self, unit: Unit, ctx: StepContext) -> BatchItem:
        if unit.playbook:
            return BatchItem(unit.name, self._handler(unit.steps[0]).call(unit.steps[0], ctx))
        return BatchItem(unit.name, None)  # a gate alone: sitectl runs the group

    def _conclude(self, error: SitectlError | None) -> StepRecord | None:
        """What the run comes to once every lane is over (main lane ended by `error`)."""
        if self.state in (RunState.LOST, RunState.BROKEN):
            assert isinstance(self.cause, BaseException)
            raise self.cause
        going = self.main.take_going()
        if going is not None:
            # The step its run was doing, settled even when a sibling failed meanwhile.
            record = self._finish(going) if error is None else self._gave_up(going, error)
            if record is not None and record.status is StepStatus.FAILED:
                self.on(RunEvent.STEP_FAILED, record)
        if self.state is RunState.STOPPED:
            assert isinstance(self.cause, StepRecord)
            return self.cause
        if self.state is RunState.HALTED:
            self.executor.say(f"the shared playbook run stopped early: {self.cause}")
            return None  # the executor runs what is left on its own
        if going is not None:
            return self._never_ran(len(self.units)) if error is None else None
        if self.state is RunState.ABORTED:
            return None  # the executor's loop sees the request and closes the operation
        if error is None:
            return self._never_ran(len(self.units))
        # The run failed before a step went (the inventory, a gate): the executor runs
        # the next step on its own, which names the trouble precisely.
        done = len(self.prelude) + len(self.main.passed)
        if done < len(self.units):
            self.solo.update(s.id for s in self.units[done].steps)
        self.executor.say(f"the shared playbook run stopped between steps: {error}")
        return None

    def _gave_up(self, going: _Going, error: SitectlError) -> StepRecord | None:
        """A step whose run ended under it: transient trouble gives it back to run on its
        own (its record stays running); a run cancelled for the lease, an abort or another
        step's deadline leaves it running where it was cut off; anything else fails it."""
        if isinstance(error, LeaseLost | AbortRequested) or (
            isinstance(error, DeadlinePassed) and error.step_id != going.step.id
        ):
            return None
        if isinstance(error, Unavailable):
            self.solo.add(going.step.id)
            self.executor.say(
                f"step {going.step.id} met transient trouble in the shared run ({error}); "
                "running it on its own"
            )
            return None
        return self.executor.finish(
            self.op, going.step, going.record, going.version, StepStatus.FAILED, str(error)
        )

    def gate(self, lane: int, name: str, after: str | None, hosts: tuple[str, ...]) -> GateAnswer:
        """Answer ansible-playbook: may `name` start in `lane`? Called between the plays."""
        assert self.watch is not None
        self.watch.gone(lane)  # the lane's step before has ended its plays
        self._prelude_done.wait()
        with self._lock:
            try:
                if self.state is RunState.BROKEN:
                    return GateAnswer("stop", f"sitectl stopped: {self.cause!r}")
                answer = (
                    self._gate(name, hosts)
                    if lane == MAIN
                    else self._side_gate(self.lanes[lane], name, hosts)
                )
                if answer.verdict == "go":
                    step = self._step(name)
                    self.watch.going(lane, name, step_timeout(self.executor.topology, step))
                return answer
            except LeaseLost as exc:
                self.on(RunEvent.LEASE_LOST, exc)
                return GateAnswer("stop", f"sitectl lost its lease: {exc}")
            except Exception as exc:  # e.g. ZooKeeper gone while checkpointing
                self.on(RunEvent.BROKE, exc)
                return GateAnswer("stop", f"sitectl stopped: {exc!r}")
            finally:
                self._lock.notify_all()

    def _trouble(self) -> str | None:
        """Why no further gate may open, when a lease, sitectl or a step stopped the run."""
        cause = self.cause
        if self.state is RunState.LOST:
            return f"sitectl lost its lease: {cause}"
        if self.state is RunState.BROKEN:
            return f"sitectl stopped: {cause!r}"
        if self.state is RunState.STOPPED:
            assert isinstance(cause, StepRecord)
            return f"step {cause.step_id} {cause.status.value}: {cause.detail}"
        return None

    def _gate(self, name: str, hosts: tuple[str, ...]) -> GateAnswer:
        names = [u.name for u in self.units]
        if name != END_GATE and (name not in names or name in self.main.passed):
            return GateAnswer("stop", f"{name} is not a step this run may start now")
        going = self.main.take_going() if self.state is not RunState.LOST else None
        if going is not None:
            # Verified and checkpointed even when a sibling failed meanwhile.
            record = self._finish(going)
            if record.status is StepStatus.FAILED:
                self.on(RunEvent.STEP_FAILED, record)
        index = len(self.units) if name == END_GATE else names.index(name)
        answer = self._may_pass(name, index)
        if answer is not None:
            return answer
        if name == END_GATE:
            self.on(RunEvent.END_PASSED)
            return GateAnswer("skip", "every step of the run is over")
        self.main.passed.append(name)
        unit = self.units[index]
        if not unit.playbook:
            return self._run_group(unit)
        missing = sorted(set(self._hosts(unit.steps[0])) - set(hosts))
        if missing:
            failed = self._fail(unit.steps[0], f"host(s) {', '.join(missing)} not in the inventory")
            self.on(RunEvent.STEP_FAILED, failed)
            return GateAnswer("stop", failed.detail or "")
        answer, self.main.going = self._begin(unit.steps[0])
        if answer.verdict != "stop":
            self._settle_inline(unit)
        return answer

    def _may_pass(self, name: str, index: int) -> GateAnswer | None:
        """A stop answer when the main lane's gate before unit `index` may not open."""
        trouble = self._trouble()
        if trouble is not None:
            return GateAnswer("stop", trouble)
        if self.state is RunState.HALTED:
            return GateAnswer("stop", str(self.cause))
        # The siblings of the steps before must be over too: a group ends with its last step.
        answer = self._sides_settled(index)
        if answer is not None:
            return answer
        if name != END_GATE and self._abort_requested():
            # Every gate is a safe point: nothing of the next step has started.
            return GateAnswer("stop", f"{self._aborted_by()} asked to abort")
        failed = self._never_ran(index)
        if failed is not None:
            self.on(RunEvent.STEP_FAILED, failed)
            return GateAnswer("stop", f"step {failed.step_id} never ran")
        return None

    def _sides_settled(self, upto: int) -> GateAnswer | None:
        """Wait until the siblings of units before `upto` are checkpointed; a stop answer
        when the run cannot go on."""
        needed = [
            (self.lanes[self.lane_of[step.id]], step.id)
            for unit in self.units[:upto]
            for step in unit.side
            if step.id in self.lane_of
        ]

        def settled() -> bool:
            return self._trouble() is not None or all(
                sid in lane.done or lane.over for lane, sid in needed
            )

        self._lock.notify_all()  # what this gate did may be what another lane waits for
        self._lock.wait_for(settled)
        trouble = self._trouble()
        if trouble is not None:
            return GateAnswer("stop", trouble)
        unfinished = sorted(sid for lane, sid in needed if sid not in lane.done)
        if unfinished:
            # Its lane ended without it (e.g. transient trouble): the executor runs it alone.
            self.on(RunEvent.HALT, f"{', '.join(unfinished)} did not finish beside the others")
            return GateAnswer("stop", str(self.cause))
        return None

    def _side_gate(self, lane: Lane, name: str, hosts: tuple[str, ...]) -> GateAnswer:
        answer = self._side_finish(lane)
        if answer is not None or name == END_GATE:
            return answer or GateAnswer("skip", "every step of the lane is over")
        index = next((i for i, u in enumerate(self.units) if name in {s.id for s in u.side}), None)
        if index is None:
            return GateAnswer("stop", f"{name} is not a step this run may start now")
        unit = self.units[index]
        self._lock.notify_all()  # the main lane may wait for the step just finished
        self._lock.wait_for(
            lambda: (
                unit.name in self.main.passed
                or self.state is not RunState.RUNNING
                or self.main.over
            )
        )
        if unit.name not in self.main.passed or self.state not in (
            RunState.RUNNING,
            RunState.ABORTED,  # a sibling of a step that went goes too: a group ends whole
        ):
            return GateAnswer("stop", f"the shared run stopped before {name}")
        step = next(s for s in unit.side if s.id == name)
        missing = sorted(set(self._hosts(step)) - set(hosts))
        if missing:
            failed = self._fail(step, f"host(s) {', '.join(missing)} not in the inventory")
            self.on(RunEvent.STEP_FAILED, failed)
            return GateAnswer("stop", failed.detail or "")
        answer, lane.going = self._begin(step)
        if answer.verdict == "skip":
            lane.done.add(step.id)
        return answer

    def _already_true(self, steps: list[Step], ctx: StepContext) -> set[str]:
        """Siblings already true now (a role that runs on both sites, say): they get no
        lane, whose ansible-playbook start would cost more than they do. Read-only, and
        asked again at their turn."""

        def true(step: Step) -> bool:
            try:
                return bool(self._handler(step).check(step, ctx))
            except Exception:  # asked again at its turn, where errors count
                return False

        if not steps:
            return set()
        with ThreadPoolExecutor(max_workers=len(steps)) as pool:
            answers = list(pool.map(true, steps))
        return {s.id for s, yes in zip(steps, answers, strict=True) if yes}

    def _settle_inline(self, unit: Unit) -> None:
        """The unit's siblings without a lane, at the unit's gate: still true, they are
        done; else they run on their own once the run stops at the next gate."""
        ex = self.executor
        ctx = ex.context(self.op)
        for step in unit.side:
            if step.id not in self.inline:
                continue
            handler = self._handler(step)
            record = self.records.get(step.id) or StepRecord(step_id=step.id)
            record, version = ex.begin(self.op, step, record, self.versions.get(step.id))
            try:
                if ex.retrying(step, lambda s=step, h=handler: h.check(s, ctx)):
                    ex.finish(self.op, step, record, version, StepStatus.DONE, "already true")
                    continue
            except Exception as exc:
                status, detail = ex.judge(step, exc)
                self.on(
                    RunEvent.STEP_FAILED, ex.finish(self.op, step, record, version, status, detail)
                )
                return
            self.solo.add(step.id)  # left running: the executor's next pass runs it
            self.on(RunEvent.HALT, f"{step.id} is no longer true and runs on its own")

    def _side_finish(self, lane: Lane) -> GateAnswer | None:
        """Verify and checkpoint the step the lane just ran."""
        going = lane.take_going()
        if going is None:
            return None
        record = self._finish(going)
        if record.status is StepStatus.FAILED:
            self.on(RunEvent.STEP_FAILED, record)
            return GateAnswer("stop", f"step {record.step_id} failed: {record.detail}")
        lane.done.add(going.step.id)
        return None

    def _lane_over(self, lane: Lane, error: SitectlError | None) -> None:
        """A lane's ansible-playbook ended; settle the step it was running, if any."""
        with self._lock:
            lane.error = error
            if isinstance(error, LeaseLost):
                self.on(RunEvent.LEASE_LOST, error)
            elif isinstance(error, AbortRequested):
                self.on(RunEvent.ABORT_ASKED, error.who)
            try:
                going = lane.take_going() if lane.number != MAIN else None
                if going is not None:
                    if error is None:
                        lane.going = going
                        self._side_finish(lane)
                    else:
                        record = self._gave_up(going, error)
                        if record is not None:
                            self.on(RunEvent.STEP_FAILED, record)
            except LeaseLost as exc:
                self.on(RunEvent.LEASE_LOST, exc)
            except Exception as exc:
                self.on(RunEvent.BROKE, exc)
            finally:
                lane.over = True
                self._lock.notify_all()

    def _never_ran(self, before: int) -> StepRecord | None:
        """Fail the first playbook unit before index `before` whose gate never ran: its
        hosts matched nothing in the inventory, so ansible-playbook skipped its plays."""
        for unit in self.units[len(self.prelude) : before]:
            # A Python group's gate runs on localhost, which always matches.
            if unit.playbook and unit.name not in self.main.passed:
                hosts = ", ".join(self._hosts(unit.steps[0]))
                return self._fail(unit.steps[0], f"none of {hosts} is in the inventory")
        return None

    def _group(self, unit: Unit) -> StepRecord | None:
        return run_group(
            self.executor, self.op, unit.steps, dict(self.records), dict(self.versions)
        )

    def _abort_requested(self) -> bool:
        """Whether an abort was asked: the run is ABORTED, or the store says so now."""
        with self._lock:
            if self.state in (RunState.PRELUDE, RunState.RUNNING):
                who = self.executor.store.abort_requested(self.op.id)
                if who is not None:
                    self.on(RunEvent.ABORT_ASKED, who)
            return self.state is RunState.ABORTED

    def _aborted_by(self) -> str:
        return str(self.cause) if self.state is RunState.ABORTED else "someone"

    def _run_group(self, unit: Unit) -> GateAnswer:
        failed = self._group(unit)
        if failed is not None:
            self.on(RunEvent.STEP_FAILED, failed)
            return GateAnswer("stop", f"step {failed.step_id} failed: {failed.detail}")
        return GateAnswer("skip", "run by sitectl")

    def _begin(self, step: Step) -> tuple[GateAnswer, _Going | None]:
        ex = self.executor
        ctx = ex.context(self.op)
        handler = self._handler(step)
        record = self.records.get(step.id) or StepRecord(step_id=step.id)
        record, version = ex.begin(self.op, step, record, self.versions.get(step.id))
        try:
            if ex.already_true(step, handler, ctx):
                ex.finish(self.op, step, record, version, StepStatus.DONE, "already true")
                return GateAnswer("skip", "already true"), None
            handler.starting(step, ctx)
        except Exception as exc:
            status, detail = ex.judge(step, exc)
            self.on(RunEvent.STEP_FAILED, ex.finish(self.op, step, record, version, status, detail))
            return GateAnswer("stop", f"step {step.id} {status.value}: {detail}"), None
        return GateAnswer("go"), _Going(step, record, version)

    def _finish(self, going: _Going) -> StepRecord:
        """Verify the step that just ran and checkpoint its outcome."""
        ex = self.executor
        ctx = ex.context(self.op)
        step = going.step
        ex.faults.inside_step(step.id)
        try:
            ex.verifying(step, lambda: self._handler(step).verify(step, ctx))
            status, detail = StepStatus.DONE, "applied and verified"
        except Exception as exc:
            status, detail = ex.judge(step, exc)
        return ex.finish(self.op, step, going.record, going.version, status, detail)

    def _fail(self, step: Step, detail: str) -> StepRecord:
        ex = self.executor
        record = self.records.get(step.id) or StepRecord(step_id=step.id)
        record, version = ex.begin(self.op, step, record, self.versions.get(step.id))
        return ex.finish(self.op, step, record, version, StepStatus.FAILED, detail)

    def _step(self, step_id: str) -> Step:
        return next(s for u in self.units for s in (*u.steps, *u.side) if s.id == step_id)

    def _handler(self, step: Step) -> PlaybookStep:
        handler = self.executor.handlers[step.action]
        assert isinstance(handler, PlaybookStep)
        return handler

    def _hosts(self, step: Step) -> tuple[str, ...]:
        return self._handler(step).call(step, self.executor.context(self.op)).hosts
