"""Repointing DNS (orchestrator.adapters.dns) and verifying it on every server."""

from __future__ import annotations

from orchestrator.adapters.dns import changes_for_site, changes_from_params, provider_for, verify
from orchestrator.adapters.dns.rfc2136 import Rfc2136Provider
from orchestrator.config.model import DnsZone
from orchestrator.engine.handlers import StepContext
from orchestrator.errors import Unavailable
from orchestrator.plan.model import Step

VERIFY_TIMEOUT_S = 10.0


def _zone(ctx: StepContext, name: str) -> DnsZone:
    return next(z for z in ctx.topology.dns.zones if z.name == name)


class DnsUpdateHandler:
    def check(self, step: Step, ctx: StepContext) -> bool:
        zone = _zone(ctx, step.target)
        result = verify(
            zone.name, changes_from_params(step.params), zone.verify_servers, timeout=0.0
        )
        return result.ok

    def apply(self, step: Step, ctx: StepContext) -> None:
        zone = _zone(ctx, step.target)
        provider = provider_for(ctx.topology, zone)
        epoch = None
        if isinstance(provider, Rfc2136Provider):
            # Claim the zone's fence for our epoch, so a deposed leader's later update
            # is refused by the DNS server itself.
            provider.claim_fence(ctx.fence.epoch)
            epoch = ctx.fence.epoch
        ctx.fence.ensure()
        provider.apply(
            changes_from_params(step.params), epoch=epoch, tag=f"{ctx.operation.id}/{step.id}"
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        zone = _zone(ctx, step.target)
        result = verify(
            zone.name,
            changes_from_params(step.params),
            zone.verify_servers,
            timeout=VERIFY_TIMEOUT_S,
        )
        if not result.ok:
            raise Unavailable(result.describe())


class DnsVerifyHandler:
    """Every zone, every authoritative server, answers the new site's values."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        pass

    def verify(self, step: Step, ctx: StepContext) -> None:
        problems = []
        for zone in ctx.topology.dns.zones:
            result = verify(
                zone.name,
                changes_for_site(zone, step.site or ""),
                zone.verify_servers,
                timeout=VERIFY_TIMEOUT_S,
            )
            if not result.ok:
                problems.append(result.describe())
        if problems:
            raise Unavailable("; ".join(problems))
