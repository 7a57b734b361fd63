"""An approval step: the operation waits until a person answers.

The step asks (a fenced record beside the operation's, which `sitectl status` shows),
tells the notification targets once (`approval-needed`), then polls for the answer that
`sitectl approve|reject|skip` writes. The lease and its ZooKeeper session stay this
process's while it waits; nothing else runs. An abort ends the wait at once (the step
stays running, the operation closes as aborted); so does a lost lease.

After a crash the resumed step finds its earlier request and keeps its start, so a
timeout counts from the first ask, and an answer given meanwhile is taken. A reject ends
the step failed and is forgotten, so `resume` asks again instead of meeting it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.engine.cancel import AbortRequested
from orchestrator.engine.handlers import Approvals, SkippedByOperator, StepContext
from orchestrator.engine.records import ApprovalRequest, Decision, Verdict
from orchestrator.errors import Failed
from orchestrator.plan.model import Step

POLL_S = 1.0


def may_answer(request: ApprovalRequest, who: str) -> bool:
    """Whether `who` (user@host, as sitectl records a person) may answer `request`."""
    user = who.partition("@")[0]
    return not request.approvers or user in request.approvers


def who_may(request: ApprovalRequest) -> str:
    return " or ".join(request.approvers) if request.approvers else "anyone allowed to operate"


class ApprovalHandler:
    def __init__(
        self, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.clock = clock
        self.sleep = sleep
        self._said: dict[str, str] = {}

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False  # always asked: an approval is never "already true"

    def apply(self, step: Step, ctx: StepContext) -> None:
        approvals = _approvals(ctx)
        earlier = approvals.asked(step.id)
        request = ApprovalRequest(
            step_id=step.id,
            since=earlier.since if earlier is not None else self.clock(),
            description=step.description,
            approvers=tuple(step.params.get("approvers") or ()),
            timeout=step.params.get("timeout"),
            on_timeout=str(step.params.get("on_timeout") or "reject"),
        )
        approvals.ask(request)
        op = ctx.operation.id
        sentence = (
            f"operation {op} waits at {step.id} for {who_may(request)}: "
            f"`sitectl approve {op} -r REASON` or `sitectl reject {op} -r REASON`"
        )
        if request.timeout is not None:
            sentence += f"; after {request.timeout:g} s it will {request.on_timeout}"
        ctx.log(sentence)
        ctx.notify("approval-needed", step.id, sentence)
        while True:
            decision = approvals.answer(step.id)
            if decision is not None and self._taken(step, ctx, request, decision):
                self._follow(step, ctx, decision)
                return
            who = approvals.abort_requested()
            if who is not None:
                raise AbortRequested(who)
            ctx.fence.ensure()  # a deposed leader stops waiting on others' behalf
            if request.timeout is not None and self.clock() - request.since >= request.timeout:
                self._timed_out(step, ctx, request)
                return
            self.sleep(POLL_S)

    def verify(self, step: Step, ctx: StepContext) -> None:
        return None  # the answer was the whole step

    def _taken(
        self, step: Step, ctx: StepContext, request: ApprovalRequest, decision: Decision
    ) -> bool:
        if decision.verdict is Verdict.SKIP or may_answer(request, decision.by):
            return True
        said = f"{decision.by} answered {step.id}, but only {who_may(request)} may: ignored"
        if self._said.get(step.id) != said:
            self._said[step.id] = said
            ctx.log(said)
        return False

    def _follow(self, step: Step, ctx: StepContext, decision: Decision) -> None:
        verdict = {
            Verdict.APPROVE: "approved",
            Verdict.REJECT: "rejected",
            Verdict.SKIP: "skipped",
        }[decision.verdict]
        said = f"{step.id} {verdict} by {decision.by}: {decision.reason}"
        ctx.log(said)
        if decision.verdict is Verdict.APPROVE:
            return
        if decision.verdict is Verdict.SKIP:
            raise SkippedByOperator(f"skipped by {decision.by}: {decision.reason}")
        _approvals(ctx).forget(step.id)  # a resume asks again
        raise Failed(f"rejected by {decision.by}: {decision.reason}")

    def _timed_out(self, step: Step, ctx: StepContext, request: ApprovalRequest) -> None:
        said = f"no answer to {step.id} within {request.timeout:g} s"
        if request.on_timeout == "approve":
            ctx.log(f"{said}: approved by its on_timeout")
            if ctx.audit is not None:
                ctx.audit.write(
                    "approval.timed_out",
                    op=ctx.operation.id,
                    step=step.id,
                    epoch=ctx.fence.epoch,
                    detail="approved by on_timeout",
                )
            return
        raise Failed(f"{said}: rejected by its on_timeout")


def _approvals(ctx: StepContext) -> Approvals:
    if ctx.approvals is None:
        raise Failed("this run has no record to ask a person through: cannot wait for approval")
    return ctx.approvals
