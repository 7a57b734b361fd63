"""The site ticket as steps of a move: released by the old site once its application has
stopped (switchover), waited for before the new site becomes writable (failover's
fence/wait), and granted to the new site before its application starts.

Every write is a ZooKeeper transaction through the operation's lease
(coordination/ticketstore.py), so a deposed engine cannot move the ticket. The wait
itself changes nothing but the ticket's revocation, which stops the old site renewing it
(a site still reachable through ZooKeeper would otherwise keep extending it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from orchestrator.coordination.ticket import Ticket, Wait, clock_text, fence_wait
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.records import StepStatus
from orchestrator.errors import Failed
from orchestrator.plan.model import Step

PROGRESS_EVERY_S = 2.0  # how often a fence/wait says how long is left
POLL_S = 0.25  # how often it re-checks the lease and an `abort --now` meanwhile


class TicketMoves(Protocol):
    """The ticket as the engine moves it: every write fenced by the operation's lease."""

    def read(self) -> Ticket | None: ...
    def grant(self, site: str, now: float, ttl: float) -> Ticket: ...
    def release(self, site: str, now: float) -> Ticket | None: ...
    def revoke(self, site: str, now: float) -> Ticket | None: ...


class _TicketStep:
    def __init__(
        self,
        tickets: TicketMoves | None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._given = tickets
        self.clock = clock
        self.sleep = sleep

    @property
    def tickets(self) -> TicketMoves:
        if self._given is None:
            raise Failed("no ZooKeeper ticket store was given to the engine")
        return self._given

    def audit(self, ctx: StepContext, event: str, step: Step, **fields: object) -> None:
        if ctx.audit is not None:
            ctx.audit.write(
                event, op=ctx.operation.id, step=step.id, epoch=ctx.fence.epoch, **fields
            )


class TicketReleaseHandler(_TicketStep):
    def check(self, step: Step, ctx: StepContext) -> bool:
        ticket = self.tickets.read()
        return ticket is None or ticket.holder != step.site

    def apply(self, step: Step, ctx: StepContext) -> None:
        site = step.site or ""
        released = self.tickets.release(site, self.clock())
        if released is not None:
            ctx.log(f"released {site}'s site ticket: nothing at {site} may serve without a grant")
            self.audit(ctx, "ticket.released", step, site=site)

    def verify(self, step: Step, ctx: StepContext) -> None:
        if not self.check(step, ctx):
            raise Failed(f"{step.site} still holds the site ticket after its release")


class TicketGrantHandler(_TicketStep):
    def check(self, step: Step, ctx: StepContext) -> bool:
        ticket = self.tickets.read()
        return ticket is not None and ticket.renewable_by(step.site or "")

    def apply(self, step: Step, ctx: StepContext) -> None:
        site, now = step.site or "", self.clock()
        ticket = self.tickets.read()
        refusal = self._refusal(ticket, site, now, step, ctx)
        if refusal:
            raise Failed(refusal)
        granted = self.tickets.grant(site, now, float(step.params["ttl"]))
        ctx.log(f"granted the site ticket to {site} at epoch {granted.epoch}")
        self.audit(ctx, "ticket.granted", step, site=site, ttl=granted.ttl)

    def _refusal(
        self, ticket: Ticket | None, site: str, now: float, step: Step, ctx: StepContext
    ) -> str | None:
        """Another site's live ticket is taken only after this operation's fence/wait."""
        if ticket is None or ticket.holder in (None, site):
            return None
        if ticket.expired(now, float(step.params["clock_drift"])):
            return None
        waited = [
            r
            for k, r in ctx.records().items()
            if k.startswith("fence/wait/") and r.status is StepStatus.DONE
        ]
        if waited:
            return None
        return (
            f"refusing to grant the site ticket to {site}: {ticket.holder} still holds it "
            f"({ticket.describe(now)}) and no fence/wait of this operation passed"
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        if not self.check(step, ctx):
            raise Failed(f"{step.site} does not hold the site ticket after its grant")


class FenceWaitHandler(_TicketStep):
    def check(self, step: Step, ctx: StepContext) -> bool:
        return False  # decided afresh each time: a resume waits only what is left

    def apply(self, step: Step, ctx: StepContext) -> None:
        old, drift = str(step.params["old_site"]), float(step.params["clock_drift"])
        # Whatever follows, the old site may renew no more: its last renewal stands.
        if self.tickets.revoke(old, self.clock()) is not None:
            ctx.log(f"revoked {old}'s site ticket: {old} can no longer renew it")
        ticket = self.tickets.read()
        skip = ctx.operation.no_fence_wait
        if skip:
            ctx.log(
                f"WARNING: not waiting for {old}'s site ticket to expire (--no-fence-wait: "
                f"{skip}): {old} may still be serving while {step.site} becomes writable"
            )
            self.audit(ctx, "fence.skipped", step, old_site=old, no_fence_wait=skip)
            return
        records = ctx.records()
        stopped = all(
            (r := records.get(s)) is not None and r.status is StepStatus.DONE
            for s in step.params["stop_steps"]
        )
        wait = fence_wait(ticket, old, stopped, drift, self.clock())
        ctx.log(f"fence/wait {old}: {wait.sentence}")
        self._audit_wait(ctx, step, ticket, wait, drift)
        if wait.until is not None:
            self._wait(wait.until, old, ctx)

    def _audit_wait(
        self, ctx: StepContext, step: Step, ticket: Ticket | None, wait: Wait, drift: float
    ) -> None:
        self.audit(
            ctx,
            "fence.wait",
            step,
            old_site=step.params["old_site"],
            renewed_at=ticket.renewed_at if ticket else None,
            ttl=ticket.ttl if ticket else None,
            clock_drift=drift,
            passes_at=wait.until,
            detail=wait.sentence,
        )
        ctx.figures["fence_wait_until"] = wait.until

    def _wait(self, until: float, old: str, ctx: StepContext) -> None:
        """Sleep until `until`, saying how long is left; stop at once if the lease is
        lost or an `abort --now` is asked."""
        said = float("-inf")
        while (left := until - self.clock()) > 0:
            ctx.fence.ensure()
            stop = ctx.cancel() if ctx.cancel else None
            if stop is not None:
                raise stop
            if self.clock() - said >= PROGRESS_EVERY_S:
                ctx.log(f"fence/wait {old}: {left:.1f} s left, passes at {clock_text(until)}")
                said = self.clock()
            self.sleep(min(left, POLL_S))
        ctx.log(f"fence/wait {old}: {old}'s site ticket has expired, the wait is over")

    def verify(self, step: Step, ctx: StepContext) -> None:
        pass
