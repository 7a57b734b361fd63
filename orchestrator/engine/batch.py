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

from orchestrator.coordination.paths import encode_step_id
from orchestrator.engine.cancel import AbortRequested, DeadlinePassed, Watch
from orchestrator.engine.groups import run_group
from orchestrator.engine.handlers import StepContext, StepHandler
from orchestrator.engine.lifecycle import StepLife
from orchestrator.engine.progress import steps_to_run
from orchestrator.engine.records import OperationRecord, StepRecord, StepStatus
from orchestrator.engine.steps.common import PlaybookStep, step_timeout
from orchestrator.errors import Failed, LeaseLost, SitectlError, Unavailable
from orchestrator.gates import END_GATE, BatchItem, GateAnswer
from orchestrator.plan.model import Action, Plan, Step

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


@dataclass
class BatchRun:
    executor: StepLife  # the steps' lifecycle, and where the runs wind down
    op: OperationRecord
    units: list[Unit]
    records: Mapping[str, StepRecord]
    versions: Mapping[str, int]
    solo: set[str]
    going: _Going | None = None  # the main lane's step whose plays run now
    passed: list[str] = field(default_factory=list)  # main-lane gates answered, in order
    stopped: StepRecord | None = None
    lost: LeaseLost | None = None
    aborted: str | None = None
    broken: BaseException | None = None  # raised where the executor would have raised
    ended: bool = False  # the main lane passed its end gate: every step is checkpointed
    halted: str | None = None  # why the run stopped early for the executor to go on alone
    side_going: dict[int, _Going] = field(default_factory=dict)
    lane_of: dict[str, int] = field(default_factory=dict)  # sibling → its lane
    inline: set[str] = field(default_factory=set)  # siblings already true: no lane
    side_done: set[str] = field(default_factory=set)
    lanes_over: set[int] = field(default_factory=set)  # lanes whose ansible-playbook ended
    # What kills every lane's ansible-playbook at once: the lease, an abort, a deadline.
    watch: Watch | None = None
    main_error: SitectlError | None = None  # how the main lane's ansible-playbook ended
    _prelude_done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @property
    def prelude(self) -> list[Unit]:
        first = next(i for i, u in enumerate(self.units) if u.playbook)
        return self.units[:first]

    def run(self) -> StepRecord | None:
        """Run the stretch; return the failed step's record, if one failed."""
        self.watch = self.executor.watch(self.op)
        laid_out = self._lay_out(self.executor.context(self.op))
        if laid_out is None:
            return None  # the executor's loop runs what is left, group by group
        items, lanes = laid_out
        steps = [s for u in self.units for s in (*u.steps, *u.side)]
        bound = sum(step_timeout(self.executor.topology, s) for s in steps)
        self.executor.say(
            f"running {len(steps)} steps in "
            + (f"{1 + len(lanes)} side-by-side playbook runs" if lanes else "one playbook run")
            + ": "
            + ", ".join(s.id for s in steps)
        )
        workers = [
            threading.Thread(
                target=self._lane,
                args=(lane, run_items, bound),
                name=f"playbook-lane-{lane}",
                daemon=True,
            )
            for lane, run_items in {MAIN: items, **lanes}.items()
        ]
        for worker in workers:
            worker.start()
        return self._wait(workers)

    def _lay_out(
        self, ctx: StepContext
    ) -> tuple[list[BatchItem], dict[int, list[BatchItem]]] | None:
        """The main lane's gates and each side lane's, for the units that can share the
        run; None when fewer than two playbook steps are left to share it."""
        items: list[BatchItem] = []
        lanes: dict[int, list[BatchItem]] = {}
        self.inline = self._already_true([s for u in self.units for s in u.side], ctx)
        for unit in self.units:
            try:
                item = self._item(unit, ctx)
                beside = [
                    BatchItem(s.id, self._handler(s).call(s, ctx))
                    for s in unit.side
                    if s.id not in self.inline
                ]
            except SitectlError:
                self.solo.update(s.id for s in (*unit.steps, *unit.side))
                break  # on its own it fails with its own message
            items.append(item)
            for lane, side in enumerate(beside, start=1):
                lanes.setdefault(lane, []).append(side)
                self.lane_of[side.name] = lane
        self.units = self.units[: len(items)]
        while self.units and not self.units[-1].playbook:
            self.units.pop()
        if sum(1 + len(u.side) for u in self.units if u.playbook) < 2:
            return None
        items = items[len(self.prelude) : len(self.units)]
        kept = {s.id for u in self.units for s in u.side}
        lanes = {n: [i for i in beside if i.name in kept] for n, beside in lanes.items()}
        return items, {n: beside for n, beside in lanes.items() if beside}

    def _lane(self, lane: int, run_items: list[BatchItem], bound: float) -> None:
        """One lane's ansible-playbook run, from its start to its end (a thread)."""
        ex, topo = self.executor, self.executor.topology
        assert self.watch is not None
        error: SitectlError | None = None
        suffix = "" if lane == MAIN else f"-lane{lane}"
        first = next(u for u in self.units if u.playbook).steps[0]
        try:
            self._handler(first).gated_run()(
                run_items,
                topo.resolve(topo.ansible.inventory),
                ex.artifacts / ("batch-" + encode_step_id(self.units[0].name) + suffix),
                lambda name, after, hosts: self.gate(lane, name, after, hosts),
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
        if lane == MAIN:
            self.main_error = error
        self._lane_over(lane, error)

    def _wait(self, workers: list[threading.Thread]) -> StepRecord | None:
        """Run the prelude while ansible-playbook starts, then wait for the main lane."""
        try:
            self._run_prelude(self.prelude)
        except BaseException as exc:
            self.broken = exc  # the gates now stop the run; the error is raised below
            self._prelude_done.set()
            for worker in workers:
                worker.join()
            raise
        self._prelude_done.set()
        with self._lock:
            self._lock.wait_for(lambda: self.ended or MAIN in self.lanes_over)
            if self.ended:
                # Every step is verified and checkpointed; ansible-playbook only winds
                # down now. The executor goes on and joins it before its last word.
                self.executor.wind_down(workers)
                return None
        for worker in workers:
            worker.join()
        with self._lock:
            return self._conclude(self.main_error)

    def _run_prelude(self, prelude: list[Unit]) -> None:
        """Run the groups before the first playbook step while ansible-playbook starts;
        its first gate waits for them."""
        try:
            for unit in prelude:
                if self._abort_requested():
                    return
                failed = self._group(unit)
                if failed is not None:
                    self.stopped = failed
                    return
        except LeaseLost as exc:
            self.lost = exc

    def _item(self, unit: Unit, ctx: StepContext) -> BatchItem:
        if unit.playbook:
            return BatchItem(unit.name, self._handler(unit.steps[0]).call(unit.steps[0], ctx))
        return BatchItem(unit.name, None)  # a gate alone: sitectl runs the group

    def _conclude(self, error: SitectlError | None) -> StepRecord | None:
        if self.lost is not None:
            raise self.lost
        if self.broken is not None:
            raise self.broken
        going, self.going = self.going, None
        if going is not None:
            # The step its run was doing, settled even when a sibling failed meanwhile.
            record = self._finish(going) if error is None else self._gave_up(going, error)
            if record is not None and record.status is StepStatus.FAILED:
                self.stopped = self.stopped or record
        if self.stopped is not None:
            return self.stopped
        if self.halted is not None:
            self.executor.say(f"the shared playbook run stopped early: {self.halted}")
            return None  # the executor runs what is left on its own
        if going is not None:
            return self._never_ran(len(self.units)) if error is None else None
        if self.aborted is not None:
            return None  # the executor's loop sees the request and closes the operation
        if error is None:
            return self._never_ran(len(self.units))
        # The run failed before a step went (the inventory, a gate): the executor runs
        # the next step on its own, which names the trouble precisely.
        done = len(self.prelude) + len(self.passed)
        unit = self.units[done] if done < len(self.units) else None
        if unit is not None:
            self.solo.update(s.id for s in unit.steps)
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
                if self.broken is not None:
                    return GateAnswer("stop", f"sitectl stopped: {self.broken!r}")
                answer = (
                    self._gate(name, hosts) if lane == MAIN else self._side_gate(lane, name, hosts)
                )
                if answer.verdict == "go":
                    step = self._step(name)
                    self.watch.going(lane, name, step_timeout(self.executor.topology, step))
                return answer
            except LeaseLost as exc:
                self.lost = exc
                return GateAnswer("stop", f"sitectl lost its lease: {exc}")
            except Exception as exc:  # e.g. ZooKeeper gone while checkpointing
                self.broken = exc
                return GateAnswer("stop", f"sitectl stopped: {exc!r}")
            finally:
                self._lock.notify_all()

    def _trouble(self) -> str | None:
        if self.lost is not None:
            return f"sitectl lost its lease: {self.lost}"
        if self.broken is not None:
            return f"sitectl stopped: {self.broken!r}"
        if self.stopped is not None:
            return f"step {self.stopped.step_id} {self.stopped.status.value}: {self.stopped.detail}"
        return None

    def _gate(self, name: str, hosts: tuple[str, ...]) -> GateAnswer:
        names = [u.name for u in self.units]
        if name != END_GATE and (name not in names or name in self.passed):
            return GateAnswer("stop", f"{name} is not a step this run may start now")
        if self.going is not None and self.lost is None:
            # Verified and checkpointed even when a sibling failed meanwhile.
            going, self.going = self.going, None
            record = self._finish(going)
            if record.status is StepStatus.FAILED:
                self.stopped = self.stopped or record
        trouble = self._trouble()
        if trouble is not None:
            return GateAnswer("stop", trouble)
        if self.halted is not None:
            return GateAnswer("stop", self.halted)
        index = len(self.units) if name == END_GATE else names.index(name)
        # The siblings of the steps before must be over too: a group ends with its last step.
        answer = self._sides_settled(index)
        if answer is not None:
            return answer
        if name != END_GATE and (self.aborted is not None or self._abort_requested()):
            # Every gate is a safe point: nothing of the next step has started.
            return GateAnswer("stop", f"{self.aborted} asked to abort")
        failed = self._never_ran(index)
        if failed is not None:
            self.stopped = failed
            return GateAnswer("stop", f"step {failed.step_id} never ran")
        if name == END_GATE:
            self.ended = True
            return GateAnswer("skip", "every step of the run is over")
        self.passed.append(name)
        unit = self.units[index]
        if not unit.playbook:
            return self._run_group(unit)
        missing = sorted(set(self._hosts(unit.steps[0])) - set(hosts))
        if missing:
            self.stopped = self._fail(
                unit.steps[0], f"host(s) {', '.join(missing)} not in the inventory"
            )
            return GateAnswer("stop", self.stopped.detail or "")
        answer, self.going = self._begin(unit.steps[0])
        if answer.verdict != "stop":
            self._settle_inline(unit)
        return answer

    def _sides_settled(self, upto: int) -> GateAnswer | None:
        """Wait until the siblings of units before `upto` are checkpointed; a stop answer
        when the run cannot go on."""
        needed = {
            (self.lane_of[step.id], step.id)
            for unit in self.units[:upto]
            for step in unit.side
            if step.id in self.lane_of
        }

        def settled() -> bool:
            return self._trouble() is not None or all(
                sid in self.side_done or lane in self.lanes_over for lane, sid in needed
            )

        self._lock.notify_all()  # what this gate did may be what another lane waits for
        self._lock.wait_for(settled)
        trouble = self._trouble()
        if trouble is not None:
            return GateAnswer("stop", trouble)
        unfinished = sorted(sid for _, sid in needed if sid not in self.side_done)
        if unfinished:
            # Its lane ended without it (e.g. transient trouble): the executor runs it alone.
            self.halted = f"{', '.join(unfinished)} did not finish beside the others"
            return GateAnswer("stop", self.halted)
        return None

    def _side_gate(self, lane: int, name: str, hosts: tuple[str, ...]) -> GateAnswer:
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
                unit.name in self.passed
                or self._trouble() is not None
                or self.halted is not None
                or self.aborted is not None
                or MAIN in self.lanes_over
            )
        )
        if unit.name not in self.passed or self._trouble() is not None or self.halted:
            return GateAnswer("stop", f"the shared run stopped before {name}")
        step = next(s for s in unit.side if s.id == name)
        missing = sorted(set(self._hosts(step)) - set(hosts))
        if missing:
            self.stopped = self._fail(step, f"host(s) {', '.join(missing)} not in the inventory")
            return GateAnswer("stop", self.stopped.detail or "")
        answer, going = self._begin(step)
        if going is not None:
            self.side_going[lane] = going
        elif answer.verdict == "skip":
            self.side_done.add(step.id)
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
                    self.side_done.add(step.id)
                    continue
            except Exception as exc:
                status, detail = ex.judge(step, exc)
                self.stopped = ex.finish(self.op, step, record, version, status, detail)
                return
            self.solo.add(step.id)  # left running: the executor's next pass runs it
            self.halted = f"{step.id} is no longer true and runs on its own"

    def _side_finish(self, lane: int) -> GateAnswer | None:
        """Verify and checkpoint the step the lane just ran."""
        going = self.side_going.pop(lane, None)
        if going is None:
            return None
        record = self._finish(going)
        if record.status is StepStatus.FAILED:
            self.stopped = record
            return GateAnswer("stop", f"step {record.step_id} failed: {record.detail}")
        self.side_done.add(going.step.id)
        return None

    def _lane_over(self, lane: int, error: SitectlError | None) -> None:
        """A lane's ansible-playbook ended; settle the step it was running, if any."""
        with self._lock:
            if isinstance(error, LeaseLost):
                self.lost = self.lost or error
            elif isinstance(error, AbortRequested):
                self.aborted = self.aborted or error.who
            try:
                going = self.side_going.pop(lane, None) if lane != MAIN else None
                if going is not None:
                    if error is None:
                        self.side_going[lane] = going
                        self._side_finish(lane)
                    else:
                        record = self._gave_up(going, error)
                        if record is not None:
                            self.stopped = self.stopped or record
            except LeaseLost as exc:
                self.lost = exc
            except Exception as exc:
                self.broken = self.broken or exc
            finally:
                self.lanes_over.add(lane)
                self._lock.notify_all()

    def _never_ran(self, before: int) -> StepRecord | None:
        """Fail the first playbook unit before index `before` whose gate never ran: its
        hosts matched nothing in the inventory, so ansible-playbook skipped its plays."""
        for unit in self.units[len(self.prelude) : before]:
            # A Python group's gate runs on localhost, which always matches.
            if unit.playbook and unit.name not in self.passed:
                hosts = ", ".join(self._hosts(unit.steps[0]))
                return self._fail(unit.steps[0], f"none of {hosts} is in the inventory")
        return None

    def _group(self, unit: Unit) -> StepRecord | None:
        return run_group(
            self.executor, self.op, unit.steps, dict(self.records), dict(self.versions)
        )

    def _abort_requested(self) -> bool:
        self.aborted = self.aborted or self.executor.store.abort_requested(self.op.id)
        return self.aborted is not None

    def _run_group(self, unit: Unit) -> GateAnswer:
        failed = self._group(unit)
        if failed is not None:
            self.stopped = failed
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
            self.stopped = ex.finish(self.op, step, record, version, status, detail)
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
