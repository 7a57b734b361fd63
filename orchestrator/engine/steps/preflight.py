"""Pre-flight checks and the data-readiness gate, on top of orchestrator.checks."""

from __future__ import annotations

from orchestrator.checks import blocking_problems, readiness, run_checks
from orchestrator.config.model import Topology
from orchestrator.engine.handlers import StepContext
from orchestrator.errors import Failed
from orchestrator.plan.model import Step


def as_seen(ctx: StepContext) -> Topology:
    """The topology with the site that serves now as its active site: the checks judge
    "should be running" and "replicates from" against it, and after a switchover that is
    no longer the file's default."""
    return ctx.topology.model_copy(update={"active_site": ctx.plan.from_site})


class GateRefused(Failed):
    """The readiness gate refused: what the new site would lose exceeds the RPO limits."""


class PreflightHandler:
    """Run the checks of one system; fail on what would stop the new site from serving."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        pass

    def verify(self, step: Step, ctx: StepContext) -> None:
        plan = ctx.plan
        sweep = run_checks(as_seen(ctx), [step.target])
        for result in sweep.results:
            if result.reason:
                ctx.log(f"{result.system} {result.target}: {result.status} — {result.reason}")
        problems = blocking_problems(
            sweep, step.target, from_site=plan.from_site, to_site=plan.to_site, mode=plan.mode
        )
        if problems:
            raise Failed("; ".join(problems))


class ReadinessGate:
    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        pass

    def verify(self, step: Step, ctx: StepContext) -> None:
        verdict = readiness(as_seen(ctx), ctx.plan.to_site)
        for kind, seconds in verdict.loss.items():
            ctx.figures[f"estimated_loss_seconds/{kind}"] = seconds
        ctx.log(verdict.describe())
        if verdict.ready:
            return
        accepted = ctx.operation.accept_data_loss
        if accepted:
            ctx.log(f"going on despite the gate: data loss accepted because {accepted!r}")
            return
        raise GateRefused(
            f'{verdict.describe()} — rerun with --accept-data-loss "REASON" to go on anyway'
        )
