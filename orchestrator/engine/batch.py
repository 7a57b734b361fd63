"""Consecutive playbook steps in one ansible-playbook run.

Starting ansible-playbook costs about a second, and a switchover has eight host steps
(stop, unmount, final sync, break, mount, start), with DNS between the mounts and the
starts. The executor therefore hands such a stretch of the plan to one run
(adapters/ansible.run_batch) and keeps its guarantees per step through the run's gates.
Before each step's plays, the gate asks this module, which does what the executor does
for a step on its own: verify and checkpoint the step before, check the lease,
checkpoint this step as running, ask "already true?", check the lease again; only then
does it answer "go". Groups that are not playbooks (DNS) run here, in Python, while
ansible-playbook waits at their gate. A frozen or deposed engine therefore starts
nothing.

A step that fails ends the run and is checkpointed as failed. A step that meets
transient trouble (an unreachable host, a temporary failure) is left running and taken
out of batching, so the executor runs it on its own, with its retries.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from orchestrator.adapters.ansible import BatchItem, GateAnswer, run_batch
from orchestrator.coordination.paths import encode_step_id
from orchestrator.engine.handlers import StepContext, StepHandler
from orchestrator.engine.progress import steps_to_run
from orchestrator.engine.records import OperationRecord, StepRecord, StepStatus
from orchestrator.engine.steps.common import PlaybookStep, step_timeout
from orchestrator.errors import Failed, LeaseLost, SitectlError, Unavailable
from orchestrator.plan.model import Action, Plan, Step

if TYPE_CHECKING:
    from orchestrator.engine.executor import Executor

log = logging.getLogger("sitectl.engine")


@dataclass(frozen=True)
class Unit:
    """One gate of a shared run: a playbook step, or a group run in Python meanwhile."""

    steps: tuple[Step, ...]
    playbook: bool

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

    A group of playbook steps gives a unit per step (a parallel group's steps then run
    one after the other: a second start of ansible-playbook costs more than they
    overlap). Any other group is one unit the engine runs itself, as it would outside a
    run, while ansible-playbook waits. Old-site steps of a failover and steps given back
    to run alone (`solo`) are not playbook units: each keeps its own short bound and
    retries. The stretch ends with its last playbook unit. The groups before its first
    playbook unit (pre-flight, the readiness gate) are its prelude: the engine runs them
    while ansible-playbook starts, which hides that second."""

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
            units += [Unit((s,), playbook=True) for s in pending]
        else:
            units.append(Unit(tuple(pending), playbook=False))
    while units and not units[-1].playbook:
        units.pop()
    return units if sum(u.playbook for u in units) > 1 else []


@dataclass
class _Going:
    step: Step
    record: StepRecord
    version: int


@dataclass
class BatchRun:
    executor: Executor
    op: OperationRecord
    units: list[Unit]
    records: Mapping[str, StepRecord]
    versions: Mapping[str, int]
    solo: set[str]
    going: _Going | None = None
    passed: list[str] = field(default_factory=list)  # gates answered, in order
    stopped: StepRecord | None = None
    lost: LeaseLost | None = None
    aborted: str | None = None
    broken: BaseException | None = None  # raised where the executor would have raised
    _prelude_done: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def prelude(self) -> list[Unit]:
        first = next(i for i, u in enumerate(self.units) if u.playbook)
        return self.units[:first]

    def run(self) -> StepRecord | None:
        """Run the stretch; return the failed step's record, if one failed."""
        ex = self.executor
        ctx = ex.context(self.op)
        items: list[BatchItem] = []
        for unit in self.units:
            try:
                items.append(self._item(unit, ctx))
            except SitectlError:
                self.solo.add(unit.name)  # on its own it fails with its own message
                break
        self.units = self.units[: len(items)]
        while self.units and not self.units[-1].playbook:
            self.units.pop()
        if sum(u.playbook for u in self.units) < 2:
            return None  # the executor's loop runs what is left, group by group
        prelude = self.prelude
        items = items[len(prelude) : len(self.units)]
        topo = ex.topology
        steps = [s for u in self.units for s in u.steps]
        bound = sum(step_timeout(topo, s) for s in steps)
        ex.say(
            f"running {len(steps)} steps in one playbook run: "
            + ", ".join(s.id for s in steps)
        )
        outcome: list[SitectlError | None] = [None]

        def playbooks() -> None:
            try:
                run_batch(
                    items,
                    topo.resolve(topo.ansible.inventory),
                    ex.artifacts / ("batch-" + encode_step_id(self.units[0].name)),
                    self.gate,
                    # Checks, verifies and Python groups run while the playbook waits.
                    timeout=2 * bound,
                    gate_timeout=2 * bound + 30,
                    on_task=ex.task_started,
                )
            except (Failed, Unavailable) as exc:
                outcome[0] = exc
            except Exception as exc:  # a bug: the steps left run on their own
                log.exception("the shared playbook run broke")
                outcome[0] = Failed(f"the shared playbook run broke: {exc!r}")

        worker = threading.Thread(target=playbooks, name="shared-playbook-run", daemon=True)
        worker.start()
        try:
            self._run_prelude(prelude)
        except BaseException as exc:
            self.broken = exc  # the gates now stop the run; the error is raised below
            raise
        finally:
            self._prelude_done.set()
            worker.join()
        with self._lock:
            return self._conclude(outcome[0])

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
        if self.stopped is not None:
            return self.stopped
        going = self.going
        if self.aborted is not None and going is None and error is None:
            return None  # the executor's loop sees the request and closes the operation
        if error is None:
            if going is not None:
                record = self._finish(going)
                if record.status is StepStatus.FAILED:
                    return record
            return self._never_ran(len(self.units))
        if going is None:
            # The run failed before a step went (the inventory, a gate): the executor
            # runs the next step on its own, which names the trouble precisely.
            if self.aborted is not None:
                return None
            done = len(self.prelude) + len(self.passed)
            unit = self.units[done] if done < len(self.units) else None
            if unit is not None:
                self.solo.update(s.id for s in unit.steps)
            self.executor.say(f"the shared playbook run stopped between steps: {error}")
            return None
        if isinstance(error, Unavailable):
            self.solo.add(going.step.id)
            self.executor.say(
                f"step {going.step.id} met transient trouble in the shared run ({error}); "
                "running it on its own"
            )
            return None
        self.going = None
        return self.executor.finish(
            self.op, going.step, going.record, going.version, StepStatus.FAILED, str(error)
        )

    def gate(self, name: str, after: str | None, hosts: tuple[str, ...]) -> GateAnswer:
        """Answer ansible-playbook: may unit `name` start? Called between the plays."""
        self._prelude_done.wait()
        with self._lock:
            if self.broken is not None:
                return GateAnswer("stop", f"sitectl stopped: {self.broken!r}")
            try:
                return self._gate(name, after, hosts)
            except LeaseLost as exc:
                self.lost = exc
                return GateAnswer("stop", f"sitectl lost its lease: {exc}")
            except Exception as exc:  # e.g. ZooKeeper gone while checkpointing
                self.broken = exc
                return GateAnswer("stop", f"sitectl stopped: {exc!r}")

    def _gate(self, name: str, after: str | None, hosts: tuple[str, ...]) -> GateAnswer:
        if self.lost is not None:
            return GateAnswer("stop", f"sitectl lost its lease: {self.lost}")
        names = [u.name for u in self.units]
        if name not in names or self.stopped is not None or name in self.passed:
            return GateAnswer("stop", f"{name} is not a step this run may start now")
        if self.going is not None:
            record = self._finish(self.going)
            if record.status is StepStatus.FAILED:
                self.stopped = record
                return GateAnswer("stop", f"step {record.step_id} failed: {record.detail}")
        if self.aborted is not None or self._abort_requested():
            # Every gate is a safe point: nothing of the next step has started.
            return GateAnswer("stop", f"{self.aborted} asked to abort")
        index = names.index(name)
        failed = self._never_ran(index)
        if failed is not None:
            self.stopped = failed
            return GateAnswer("stop", f"step {failed.step_id} never ran")
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
        return self._begin(unit.steps[0])

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
        return self.executor.run_group(
            self.op, unit.steps, dict(self.records), dict(self.versions)
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

    def _begin(self, step: Step) -> GateAnswer:
        ex = self.executor
        ctx = ex.context(self.op)
        handler = self._handler(step)
        record = self.records.get(step.id) or StepRecord(step_id=step.id)
        record, version = ex.begin(self.op, step, record, self.versions.get(step.id))
        try:
            if ex.retrying(step, lambda: handler.check(step, ctx)):
                ex.finish(self.op, step, record, version, StepStatus.DONE, "already true")
                return GateAnswer("skip", "already true")
            ex.lease.ensure()  # the last word before changing anything
            ex.faults.before_apply(step.id)
            handler.starting(step, ctx)
        except Exception as exc:
            status, detail = ex.judge(step, exc)
            self.stopped = ex.finish(self.op, step, record, version, status, detail)
            return GateAnswer("stop", f"step {step.id} {status.value}: {detail}")
        self.going = _Going(step, record, version)
        return GateAnswer("go")

    def _finish(self, going: _Going) -> StepRecord:
        """Verify the step that just ran and checkpoint its outcome."""
        ex = self.executor
        ctx = ex.context(self.op)
        step = going.step
        self.going = None
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

    def _handler(self, step: Step) -> PlaybookStep:
        handler = self.executor.handlers[step.action]
        assert isinstance(handler, PlaybookStep)
        return handler

    def _hosts(self, step: Step) -> tuple[str, ...]:
        return self._handler(step).call(step, self.executor.context(self.op)).hosts

