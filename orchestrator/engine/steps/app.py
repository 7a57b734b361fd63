"""Stopping and starting application roles (through orchestrator/playbooks/app.yml), and the canary.

"Already true?" is answered by the role's own protocol probes: a stopped role refuses
connections, a started one answers its protocol. A probe that times out means the site
is hung or gone: that is Unavailable, which a failover turns into "skipped".
"""

from __future__ import annotations

from typing import Literal

from orchestrator.adapters.ansible import AnsibleTemplate, PlaybookCall
from orchestrator.adapters.probes import Answer, send_canary
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.common import (
    APP_COMMANDS_TAG,
    APP_SERVICES_TAG,
    PlaybookStep,
    canary_count,
    describe,
    first_probe_address,
    playbook_call,
    role_probes,
)
from orchestrator.errors import Failed, Unavailable
from orchestrator.plan.model import Step


class AppHandler(PlaybookStep):
    def __init__(self, action: Literal["start", "stop"]) -> None:
        self.action = action

    def _state(self, step: Step, ctx: StepContext) -> bool | None:
        """True if already in the wanted state, False if not, None if unknown (no probes)."""
        results = role_probes(ctx.topology, step.target, step.hosts)
        if not results:
            return None
        hung = [r for r in results if r.answer is Answer.TIMEOUT]
        if hung:
            raise Unavailable(f"{step.site} does not answer: {describe(hung)}")
        if self.action == "start":
            return all(r.up for r in results)
        return all(r.answer is Answer.REFUSED for r in results)

    def check(self, step: Step, ctx: StepContext) -> bool:
        return bool(self._state(step, ctx))

    def call(self, step: Step, ctx: StepContext) -> PlaybookCall:
        role = ctx.topology.roles[step.target]
        return playbook_call(
            ctx,
            step,
            "app.yml",
            step.hosts,
            {
                "app_action": self.action,
                "app_role": step.target,
                "app_services": list(role.services),
                # The operator's command lines, templated by Ansible on purpose (their
                # {{ host_var }}); every other value is passed unsafe.
                "app_commands": (
                    {k: AnsibleTemplate(v) for k, v in role.commands.model_dump().items()}
                    if role.commands
                    else {}
                ),
            },
            # app.yml starts and stops by the role's commands or by its services
            runs_tags=[APP_COMMANDS_TAG if role.commands else APP_SERVICES_TAG],
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        if self._state(step, ctx) is False:
            results = role_probes(ctx.topology, step.target, step.hosts)
            wanted = "answering" if self.action == "start" else "refusing connections"
            # Unavailable: a service may take a moment to bind; the executor retries.
            raise Unavailable(f"{step.target} on {step.site} not {wanted} yet: {describe(results)}")


class CanaryHandler:
    """Send the canary over SMTP on the old site and wait until it is delivered there."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False  # a second canary is harmless; a missing one would blind the verify

    def apply(self, step: Step, ctx: StepContext) -> None:
        user = ctx.topology.application.probe_user
        smtp = first_probe_address(ctx.topology, step.site or "", "smtp")
        if user is None or smtp is None:
            raise Failed("no probe_user or SMTP probe in the topology: cannot write a canary")
        address, port, tls = smtp
        subject = send_canary(address, port, user.mail_address(), ctx.operation.id, tls=tls)
        ctx.figures["canary_subject"] = subject
        ctx.log(f"canary {subject!r} sent to {user.mail_address()} on {step.site}")

    def verify(self, step: Step, ctx: StepContext) -> None:
        if canary_count(ctx, step.site or "") < 1:
            raise Unavailable(f"canary not yet delivered on {step.site}")
