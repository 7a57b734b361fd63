"""The verify phase: the application answers on the new site, and the canary made it."""

from __future__ import annotations

from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.common import canary_count, describe, site_probes
from orchestrator.errors import Failed, Unavailable
from orchestrator.plan.model import Step


class AppVerifyHandler:
    def check(self, step: Step, ctx: StepContext) -> bool:
        return False  # verification is the point: always look

    def apply(self, step: Step, ctx: StepContext) -> None:
        pass

    def verify(self, step: Step, ctx: StepContext) -> None:
        results = site_probes(ctx.topology, step.site or "")
        down = [r for r in results if not r.up]
        if down:
            raise Unavailable(f"not answering on {step.site}: {describe(down)}")
        ctx.log(f"{len(results)} protocol probe(s) answer on {step.site}: {describe(results)}")


class CanaryVerifyHandler:
    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        pass

    def verify(self, step: Step, ctx: StepContext) -> None:
        found = canary_count(ctx, step.site or "")
        if found < 1:
            # Failed, not Unavailable: the IMAP server answered and the message is not
            # there; the last write before the cutover did not reach the new site.
            raise Failed(
                f"the canary of {ctx.operation.id} is not on {step.site}: the last write "
                f"before the cutover was lost"
            )
        ctx.log(f"the canary written before the cutover is readable on {step.site}")
