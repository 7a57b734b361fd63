"""A step's life, the one place it is written: make sure we still hold the lease →
checkpoint it as running → "already true?" → lease check → apply → verify → judge what
an error means → checkpoint the outcome, fenced by the epoch. Retries and the step's
bound live here too.

Two schedulers run steps through it: the per-group runner (engine/groups.py: the steps
of one group side by side, each on its own) and the shared playbook run (engine/batch.py:
consecutive host steps in one ansible-playbook run that waits at gates). The executor
(engine/executor.py) walks the plan and picks one or the other for each stretch.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from orchestrator.audit import AuditLog, identity
from orchestrator.config.model import Topology
from orchestrator.engine.cancel import AbortRequested, Watch
from orchestrator.engine.faults import Faults
from orchestrator.engine.handlers import (
    Fence,
    Notify,
    SkippedByOperator,
    StepContext,
    StepHandler,
    no_notice,
)
from orchestrator.engine.records import (
    FINISHED_STEP,
    ApprovalRequest,
    Decision,
    OperationRecord,
    StepRecord,
    StepStatus,
)
from orchestrator.errors import Failed, LeaseLost, Unavailable
from orchestrator.plan.model import Action, Plan, Step

log = logging.getLogger("sitectl.engine")
# verify polls after 0.05 s, 0.1, 0.2, … then every 2 s (the step's bound comes first)
VERIFY_POLLS = 100


class Store(Protocol):
    def operation(self, op_id: str) -> tuple[OperationRecord, int]: ...
    def update_operation(self, lease: Any, op: OperationRecord, version: int) -> int: ...
    def steps(self, op_id: str) -> dict[str, tuple[StepRecord, int]]: ...
    def records(self, op_id: str) -> dict[str, StepRecord]: ...
    def write_step(
        self, lease: Any, op_id: str, record: StepRecord, version: int | None
    ) -> int: ...
    def abort_requested(self, op_id: str) -> str | None: ...
    def abort_now(self, op_id: str) -> str | None: ...
    def clear_current(self, lease: Any) -> None: ...
    def request_approval(self, lease: Any, op_id: str, request: ApprovalRequest) -> None: ...
    def approval_requests(self, op_id: str) -> list[ApprovalRequest]: ...
    def decision(self, op_id: str, step_id: str) -> Decision | None: ...
    def clear_decision(self, lease: Any, op_id: str, step_id: str) -> None: ...


@dataclass(frozen=True)
class OperationApprovals:
    """The Approvals of one operation (engine/handlers.py), in its store, under its lease."""

    store: Store
    lease: Fence
    op_id: str

    def ask(self, request: ApprovalRequest) -> None:
        self.store.request_approval(self.lease, self.op_id, request)

    def asked(self, step_id: str) -> ApprovalRequest | None:
        found = [r for r in self.store.approval_requests(self.op_id) if r.step_id == step_id]
        return found[-1] if found else None

    def answer(self, step_id: str) -> Decision | None:
        return self.store.decision(self.op_id, step_id)

    def forget(self, step_id: str) -> None:
        self.store.clear_decision(self.lease, self.op_id, step_id)

    def abort_requested(self) -> str | None:
        return self.store.abort_requested(self.op_id)


class Events(Protocol):
    """Progress for people: the CLI draws it, tests record it."""

    def step_started(self, step: Step) -> None: ...
    def step_finished(self, step: Step, record: StepRecord) -> None: ...
    def task_started(self, step_id: str, host: str, task: str) -> None:
        """A playbook task of the step started on a host."""


class NoEvents:
    def step_started(self, step: Step) -> None:
        pass

    def step_finished(self, step: Step, record: StepRecord) -> None:
        pass

    def task_started(self, step_id: str, host: str, task: str) -> None:
        pass


class _StopAfter(stop_base):
    """Tenacity's stop_after_delay on the executor's clock: tenacity's own is the real
    monotonic clock, which a test's fake sleep never moves. The clock is first read when
    an attempt fails (a call that succeeds at once costs no read); the first attempt's own
    duration, which only tenacity timed, counts towards the bound."""

    def __init__(self, clock: Callable[[], float], bound: float) -> None:
        self.clock = clock
        self.bound = bound
        self.deadline: float | None = None

    def __call__(self, retry_state: RetryCallState) -> bool:
        now = self.clock()
        if self.deadline is None:
            self.deadline = now - (retry_state.seconds_since_start or 0.0) + self.bound
        return now >= self.deadline


@dataclass
class StepLife:
    """Everything a step's life needs, and the steps of that life as methods."""

    plan: Plan
    topology: Topology
    store: Store
    lease: Fence
    handlers: Mapping[Action, StepHandler]
    audit: AuditLog
    artifacts: Path
    events: Events = field(default_factory=NoEvents)
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    attempts: int = 3
    figures: dict[str, object] = field(default_factory=dict)
    # The operation's notifications (orchestrator/notify): step-failed here, the rest
    # by the operation service; handed to each step as ctx.notify.
    notify: Notify = no_notice
    _winding: list[threading.Thread] = field(default_factory=list)  # see wind_down

    def wind_down(self, runs: list[threading.Thread]) -> None:
        """Playbook runs whose every step is checkpointed and that only end now: the
        operation goes on meanwhile, and they are joined once its outcome is written."""
        self._winding.extend(runs)

    def wound_down(self) -> None:
        """Wait for the runs handed to `wind_down` to end (no step is left to them)."""
        for run in self._winding:
            run.join()
        self._winding.clear()

    def run_step(
        self,
        op: OperationRecord,
        step: Step,
        record: StepRecord | None,
        version: int | None,
    ) -> StepRecord:
        record = record or StepRecord(step_id=step.id)
        if record.status in FINISHED_STEP:
            return record
        record, version = self.begin(op, step, record, version)
        ctx = replace(
            self.context(op),
            on_task=lambda host, task: self.task_started(step.id, host, task),
            cancel=self.watch(op).check(),  # its playbook, if it runs one, stops at once
        )
        status, detail = self._attempt(step, self.handlers[step.action], ctx)
        return self.finish(op, step, record, version, status, detail)

    def task_started(self, step_id: str, host: str, task: str) -> None:
        self.events.task_started(step_id, host, task)

    def watch(self, op: OperationRecord) -> Watch:
        """What cancels a running playbook: the lease, an abort, a step's deadline."""
        return Watch(
            self.lease,
            # A plain abort waits for the step under way; `abort --now` stops it at once.
            lambda: self.store.abort_now(op.id),
            self.topology.zookeeper.session_timeout,
        )

    def context(self, op: OperationRecord) -> StepContext:
        return StepContext(
            topology=self.topology,
            plan=self.plan,
            operation=op,
            fence=self.lease,
            artifacts=self.artifacts,
            log=self.say,
            figures=self.figures,
            records=lambda: self.store.records(op.id),
            audit=self.audit,
            approvals=OperationApprovals(self.store, self.lease, op.id),
            notify=self.notify,
        )

    def begin(
        self, op: OperationRecord, step: Step, record: StepRecord, version: int | None
    ) -> tuple[StepRecord, int]:
        """Check the lease and checkpoint the step as running."""
        self.lease.ensure()
        record = record.advance(
            StepStatus.RUNNING, now=self.clock(), epoch=self.lease.epoch, host=identity()
        )
        version = self.store.write_step(self.lease, op.id, record, version)
        self._transition(op, record)
        self.events.step_started(step)
        return record, version

    def finish(
        self,
        op: OperationRecord,
        step: Step,
        record: StepRecord,
        version: int,
        status: StepStatus,
        detail: str,
    ) -> StepRecord:
        """Checkpoint the step's outcome (fenced by the epoch it started under)."""
        record = record.advance(status, now=self.clock(), epoch=record.epoch, detail=detail)
        self.store.write_step(self.lease, op.id, record, version)
        self._transition(op, record)
        if status is StepStatus.FAILED:
            self.notify("step-failed", step.id, f"step {step.id} failed: {detail}")
        self.events.step_finished(step, record)
        self.faults.step_checkpointed()
        return record

    def _attempt(
        self, step: Step, handler: StepHandler, ctx: StepContext
    ) -> tuple[StepStatus, str]:
        if (
            step.if_unreachable == "skip"
            and step.site == self.plan.from_site
            and not self.plan.old_site_reachable
        ):
            # Observed down when planned: do not touch it (it may come back mid-way with
            # stale data), and do not spend the timeout finding out again.
            return (
                StepStatus.SKIPPED,
                f"skipped: unreachable ({step.site} did not answer when the operation was planned)",
            )
        try:
            if self.already_true(step, handler, ctx):
                return StepStatus.DONE, "already true"
            self.retrying(step, lambda: handler.apply(step, ctx))
            self.faults.inside_step(step.id)
            self.verifying(step, lambda: handler.verify(step, ctx))
            return StepStatus.DONE, _with_summary("applied and verified", handler, step, ctx)
        except Exception as exc:
            status, detail = self.judge(step, exc)
        if status is StepStatus.FAILED and step.params.get("on_failure") == "continue":
            # An operator's step they said the operation may go on without.
            self.say(f"step {step.id} failed and its on_failure is continue: going on")
            return StepStatus.SKIPPED, f"failed, and on_failure is continue: {detail}"
        return status, detail

    def already_true(self, step: Step, handler: StepHandler, ctx: StepContext) -> bool:
        """Ask "already true?" (with retries); if not, make sure we still lead: after
        False the caller changes the world, here or in a shared playbook run."""
        if self.retrying(step, lambda: handler.check(step, ctx)):
            return True
        self.lease.ensure()  # the last word before changing anything
        self.faults.before_apply(step.id)
        return False

    def judge(self, step: Step, exc: Exception) -> tuple[StepStatus, str]:
        """What an error raised inside a step means for it; LeaseLost stops everything, and
        an abort that stopped its playbook leaves it running."""
        if isinstance(exc, LeaseLost | AbortRequested):
            raise exc
        if isinstance(exc, SkippedByOperator):
            return StepStatus.SKIPPED, str(exc)
        if isinstance(exc, Unavailable):
            if step.if_unreachable == "skip":
                return StepStatus.SKIPPED, f"skipped: unreachable ({exc})"
            return StepStatus.FAILED, str(exc)
        if isinstance(exc, Failed):
            return StepStatus.FAILED, str(exc)
        # A bug, not an outage: keep the traceback in the log.
        log.error(
            "step %s raised %r\n%s",
            step.id,
            exc,
            "".join(traceback.format_exception(exc)),
        )
        return StepStatus.FAILED, f"unexpected error {exc.__class__.__name__}: {exc}"

    def _bound(self, step: Step) -> float:
        return (
            self.topology.policy.unreachable_timeout
            if step.if_unreachable == "skip"
            else self.topology.policy.step_timeout
        )

    def retrying(self, step: Step, call: Callable[[], Any]) -> Any:
        """`call` again after transient trouble: a few times, spaced out."""
        retrying = Retrying(
            retry=retry_if_exception_type(Unavailable),
            stop=stop_after_attempt(self.attempts) | _StopAfter(self.clock, self._bound(step)),
            wait=wait_random_exponential(multiplier=0.5, max=5),
            sleep=self.sleep,
            before_sleep=lambda state: self._retry_said(step, state),
            reraise=True,
        )
        return retrying(call)

    def verifying(self, step: Step, call: Callable[[], Any]) -> Any:
        """Poll `verify` until it holds, within the step's bound. A started service or a
        breaking mirror converges in a moment: soon after the first look, then less
        often, rather than the few spaced-out tries of `retrying`, which could give up
        on a service that needed three seconds and waited a second for one that needed
        a tenth."""
        polling = Retrying(
            retry=retry_if_exception_type(Unavailable),
            stop=stop_after_attempt(VERIFY_POLLS) | _StopAfter(self.clock, self._bound(step)),
            wait=wait_exponential(multiplier=0.05, max=2),
            sleep=self.sleep,
            reraise=True,
        )
        return polling(call)

    def _retry_said(self, step: Step, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.say(
            f"step {step.id} attempt {state.attempt_number} failed ({error}); "
            f"retrying in {state.next_action.sleep if state.next_action else 0:.1f} s"
        )

    def _transition(self, op: OperationRecord, record: StepRecord) -> None:
        sentence = f"step {record.step_id} {record.status.value}"
        if record.status is StepStatus.RUNNING and record.attempts > 1:
            sentence += f" (attempt {record.attempts})"
        if record.detail:
            # A skip's detail names its status for readers of the record alone; the
            # sentence already did ("skipped: skipped: unreachable" otherwise).
            sentence += f": {record.detail.removeprefix(record.status.value + ': ')}"
        if record.duration is not None:
            sentence += f" in {record.duration:.2f} s"
        self.say(sentence)
        self.audit.write(
            "step." + record.status.value,
            op=op.id,
            step=record.step_id,
            epoch=record.epoch,
            reason=op.reason,
            automatic=op.automatic,
            detail=record.detail,
            attempts=record.attempts,
            duration=record.duration,
        )

    def say(self, sentence: str) -> None:
        log.info(sentence)


def _with_summary(detail: str, handler: StepHandler, step: Step, ctx: StepContext) -> str:
    """A handler may say in one sentence what the step found and did (`summary`, e.g. what
    salvage copied): it goes into the checkpoint beside how the step ended."""
    summary = getattr(handler, "summary", None)
    said = summary(step, ctx) if callable(summary) else None
    return f"{detail}: {said}" if said else detail
