"""A person's control of a running operation: answer an approval, skip a step, escalate
a switchover to a failover. Each is audited with who and why.

An answer is written beside the operation's records, unfenced like an abort request (the
operation may run in another process, which holds the lease and reads it). Skipping a
failed step writes its checkpoint under the lease, then resumes the operation here.
Escalating stops the switchover at once (`abort --now`) and starts a failover to the
same site, which applies the readiness gate and waits out the old site's ticket.

Steps that keep two sites from serving at once (the ticket moves, the fence wait) and
the readiness gate are never skipped: their overrides (`--no-fence-wait`,
`--accept-data-loss`) are options of the failover, given with a reason.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import cast

from orchestrator.audit import identity, os_user
from orchestrator.coordination.lease import Lease
from orchestrator.engine import operation as ops
from orchestrator.engine.executor import Events
from orchestrator.engine.faults import Faults
from orchestrator.engine.records import (
    FINISHED_OP,
    ApprovalRequest,
    Decision,
    Mode,
    OperationRecord,
    OpStatus,
    StepStatus,
    Verdict,
)
from orchestrator.engine.steps.approval import may_answer, who_may
from orchestrator.errors import ConfigError
from orchestrator.plan.model import Phase, Plan, Step, Trigger

ESCALATE_STOP_WAIT_S = 60.0


class ControlRefused(ConfigError):
    """The request cannot apply to the operation as it stands: nothing was changed."""


def person() -> str:
    """Who answers: user@host (an answer is a person's, not a process's)."""
    return f"{os_user()}@{socket.gethostname()}"


@dataclass(frozen=True)
class Answered:
    op_id: str
    step_id: str
    decision: Decision  # the one that stands: ours, or an earlier person's
    ours: bool

    def sentence(self) -> str:
        d = self.decision
        verdict = {"approve": "approved", "reject": "rejected", "skip": "skipped"}[d.verdict]
        if self.ours:
            return f"{self.step_id} of operation {self.op_id} {verdict}: {d.reason}"
        return (
            f"{self.step_id} of operation {self.op_id} was already {verdict} by {d.by}: "
            f"{d.reason}; the first answer stands"
        )


def waiting_approvals(s: ops.Session, op: OperationRecord) -> list[ApprovalRequest]:
    """The approvals the operation waits for now (asked, its step still running)."""
    records = s.store.records(op.id)
    return [
        r
        for r in s.store.approval_requests(op.id)
        if (rec := records.get(r.step_id)) is not None and rec.status is StepStatus.RUNNING
    ]


def operation(s: ops.Session, op_id: str | None) -> OperationRecord:
    """The operation `op_id` (default: the current one), refused unless it is unfinished."""
    op_id = op_id or s.store.current_operation()
    if not op_id:
        raise ControlRefused("no operation in progress — give its id (`sitectl history`)")
    try:
        op, _ = s.store.operation(op_id)
    except KeyError:
        raise ControlRefused(
            f"operation {op_id} is not recorded — `sitectl history` lists them"
        ) from None
    if op.status in FINISHED_OP:
        raise ControlRefused(f"operation {op.id} is {op.status.value}: nothing waits in it")
    return op


def answer(
    s: ops.Session, op_id: str | None, step_id: str | None, verdict: Verdict, reason: str
) -> Answered:
    """Approve or reject the approval the operation waits at (or `step_id`'s)."""
    op = operation(s, op_id)
    request = _waiting(s, op, step_id)
    who = person()
    if not may_answer(request, who):
        raise ControlRefused(
            f"only {who_may(request)} may answer {request.step_id}, not {who.partition('@')[0]}"
        )
    return _decide(s, op, request.step_id, Decision(verdict, who, reason, time.time()))


def _waiting(s: ops.Session, op: OperationRecord, step_id: str | None) -> ApprovalRequest:
    waiting = waiting_approvals(s, op)
    if step_id is not None:
        found = [r for r in waiting if r.step_id == step_id]
        if not found:
            now = ", ".join(r.step_id for r in waiting) or "none"
            raise ControlRefused(
                f"operation {op.id} does not wait at {step_id} (waiting now: {now})"
            )
        return found[0]
    if not waiting:
        raise ControlRefused(f"operation {op.id} waits for no approval now")
    if len(waiting) > 1:
        raise ControlRefused(
            f"operation {op.id} waits at {', '.join(r.step_id for r in waiting)} — "
            "say which with --step"
        )
    return waiting[0]


def _decide(s: ops.Session, op: OperationRecord, step_id: str, decision: Decision) -> Answered:
    stands = s.store.decide(op.id, step_id, decision)
    ours = stands == decision
    if ours:
        s.audit().write(
            f"approval.{decision.verdict.value}",
            op=op.id,
            step=step_id,
            by=decision.by,
            reason=decision.reason,
        )
    return Answered(op.id, step_id, stands, ours)


# Never skipped: what keeps two sites from serving at once, and the loss gate.
_UNSKIPPABLE = {Phase.TICKET, Phase.READINESS}


@dataclass(frozen=True)
class Skipped:
    op_id: str
    step_id: str
    resumed: ops.Outcome | None  # a failed step: the operation resumed after it


def skip(
    s: ops.Session,
    op_id: str | None,
    step_id: str,
    reason: str,
    *,
    events: Events | None = None,
    faults: Faults | None = None,
) -> Skipped | Answered:
    """Pass over a failed step (checkpointed skipped, then the operation resumes here)
    or a step waiting for a person (the running operation goes on)."""
    op = operation(s, op_id)
    plan = ops.replan(s.topology, op)
    step = _plan_step(plan.steps(), step_id, op)
    if step.phase in _UNSKIPPABLE:
        fix = (
            "the readiness gate is passed with `--accept-data-loss REASON` on a new operation"
            if step.phase is Phase.READINESS
            else "the ticket keeps two sites from serving at once; a failover's "
            "`--no-fence-wait REASON` is the recorded way past its wait"
        )
        raise ControlRefused(f"{step_id} is never skipped — {fix}")
    records = s.store.records(op.id)
    record = records.get(step_id)
    status = record.status if record else StepStatus.PENDING
    if status is StepStatus.RUNNING and step.phase is Phase.APPROVAL:
        decision = Decision(Verdict.SKIP, person(), reason, time.time())
        return _decide(s, op, step_id, decision)
    if status is not StepStatus.FAILED or record is None:
        raise ControlRefused(
            f"{step_id} is {status.value}: only a failed step, or an approval being waited "
            "for, can be skipped"
        )
    lease = Lease(s.client, s.paths, identity())
    lease.acquire(wait=s.topology.zookeeper.session_timeout + 2.0)
    try:
        steps = s.store.steps(op.id)
        current, version = steps[step_id]
        if current.status is not StepStatus.FAILED:
            raise ControlRefused(f"{step_id} is {current.status.value} now: someone resumed it")
        who = person()
        skipped = current.advance(
            StepStatus.SKIPPED,
            now=time.time(),
            epoch=lease.epoch,
            detail=f"skipped by {who}: {reason} (it had failed: {current.detail})",
        )
        s.store.write_step(lease, op.id, skipped, version)
        s.audit().write(
            "step.skipped_by_operator",
            op=op.id,
            step=step_id,
            epoch=lease.epoch,
            by=who,
            reason=reason,
            detail=current.detail,
        )
    finally:
        ops.release_quietly(lease)
    return Skipped(op.id, step_id, ops.resume_operation(s, op.id, events=events, faults=faults))


def _plan_step(steps: Iterable[Step], step_id: str, op: OperationRecord) -> Step:
    for step in steps:
        if step.id == step_id:
            return step
    raise ControlRefused(f"operation {op.id} has no step {step_id} — `sitectl status` lists them")


@dataclass(frozen=True)
class Escalated:
    switchover: str
    stopped: str  # how the switchover ended
    failover: ops.Outcome


def escalate(
    s: ops.Session,
    op_id: str | None,
    reason: str,
    *,
    accept_data_loss: str | None = None,
    no_fence_wait: str | None = None,
    stop_wait: float = ESCALATE_STOP_WAIT_S,
    events_for: Callable[[Plan], AbstractContextManager[Events | None]] | None = None,
    faults: Faults | None = None,
) -> Escalated:
    """Turn a switchover stuck on its old site into a failover to the same site."""
    op = _escalatable(s, op_id)
    stopped = ops.abort_operation(s, op.id, wait=stop_wait, now=True)
    if not stopped.stopped:
        raise ControlRefused(
            f"switchover {op.id} did not stop within {stop_wait:g} s: {stopped.message}"
        )
    s.audit().write(
        "operation.escalated", op=op.id, by=person(), reason=reason, detail=stopped.message
    )
    plan = ops.plan_operation(s, Mode.FAILOVER, op.to_site, trigger=cast(Trigger, op.trigger))
    progress = events_for(plan) if events_for is not None else contextlib.nullcontext(None)
    with progress as events:
        outcome = ops.start_operation(
            s,
            plan,
            reason=f"escalated from switchover {op.id}: {reason}",
            accept_data_loss=accept_data_loss,
            no_fence_wait=no_fence_wait,
            automatic=op.automatic,
            escalated_from=op.id,
            drill=op.drill,
            events=events,
            faults=faults,
        )
    return Escalated(op.id, stopped.message, outcome)


def _escalatable(s: ops.Session, op_id: str | None) -> OperationRecord:
    op = operation(s, op_id)
    if op.mode is not Mode.SWITCHOVER:
        raise ControlRefused(
            f"operation {op.id} is a {op.mode.value}: only a switchover is escalated to a failover"
        )
    if op.status not in (OpStatus.RUNNING, OpStatus.FAILED, OpStatus.INTERRUPTED):
        raise ControlRefused(f"switchover {op.id} is {op.status.value}: nothing to escalate")
    return op
