"""Repointing DNS (orchestrator.adapters.dns), promoting a standby primary, and
verifying on every authoritative server.

Which server is a zone's primary right now is observed, not remembered: it is the
candidate that accepts a signed no-op update. So a zone promoted by an earlier failover
keeps working, and a stale primary that comes back is found and demoted by reprotect.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.adapters.ansible import AnsibleTemplate, PlaybookCall
from orchestrator.adapters.dns import changes_for_site, changes_from_params, provider_for, verify
from orchestrator.adapters.dns.primary import accepting, first_accepting
from orchestrator.config.model import DnsServer, DnsZone, fill_for_ansible, parse_server
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.common import PlaybookStep, playbook_call, run_call
from orchestrator.errors import Failed, Unavailable
from orchestrator.plan.model import Step

VERIFY_TIMEOUT_S = 10.0


def _zone(ctx: StepContext, name: str) -> DnsZone:
    return next(z for z in ctx.topology.dns.zones if z.name == name)


def _servers(texts: Sequence[str]) -> tuple[DnsServer, ...]:
    return tuple(parse_server(t) for t in texts)


def accepting_now(ctx: StepContext, zone: DnsZone, servers: Sequence[str]) -> list[str]:
    """The given servers that take updates for the zone now (the primary, normally one)."""
    found = accepting(zone, _servers(servers), ctx.topology.base_dir)
    # REFUSED is how a secondary answers an update: expected here, so said plainly; a
    # TSIG error or silence is not, and keeps its own words.
    declined = [str(s) for s in found.declined]
    if declined:
        verb = "refuses" if len(declined) == 1 else "refuse"
        ctx.log(f"{zone.name}: {', '.join(declined)} {verb} updates, as a secondary does")
    for reason in found.refusals:
        if not any(reason.startswith(f"{d}: ") for d in declined):
            ctx.log(f"{zone.name}: {reason}")
    return [str(s) for s in found.accepted]


class DnsUpdateHandler:
    def _expected(self, step: Step, ctx: StepContext) -> tuple[DnsZone, tuple[DnsServer, ...]]:
        zone = _zone(ctx, step.target)
        servers = step.params.get("verify_servers")
        return zone, _servers(servers) if servers is not None else zone.verify_servers

    def check(self, step: Step, ctx: StepContext) -> bool:
        zone, servers = self._expected(step, ctx)
        return verify(zone.name, changes_from_params(step.params), servers, timeout=0.0).ok

    def apply(self, step: Step, ctx: StepContext) -> None:
        zone = _zone(ctx, step.target)
        if zone.provider == "rfc2136":
            candidates = step.params.get("servers") or [str(s) for s in zone.update_servers]
            primary, refusals = first_accepting(zone, _servers(candidates), ctx.topology.base_dir)
            if primary is None:
                raise Unavailable(
                    f"{zone.name}: none of {', '.join(candidates)} takes updates: "
                    + "; ".join(refusals)
                )
            if refusals:  # a secondary, or a site that is gone: said, not alarming
                ctx.log(
                    f"{zone.name}: {primary} takes updates, as the primary; "
                    f"{len(refusals)} server(s) listed before it do not ({'; '.join(refusals)})"
                )
            zone = zone.model_copy(update={"update_servers": (primary,)})
        provider = provider_for(ctx.topology, zone)
        changes, tag = changes_from_params(step.params), f"{ctx.operation.id}/{step.id}"
        # Claim the zone's fence for our epoch in the same message or batch as the
        # change, so a deposed leader's later write is refused by the DNS service itself
        # (an RFC 2136 prerequisite; Route 53's atomic DELETE-and-CREATE): a newer epoch
        # found there stops us before our own lease check even runs.
        provider.apply_claiming(
            changes, epoch=ctx.fence.epoch, tag=tag, before_write=ctx.fence.ensure
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        zone, servers = self._expected(step, ctx)
        result = verify(
            zone.name, changes_from_params(step.params), servers, timeout=VERIFY_TIMEOUT_S
        )
        if not result.ok:
            raise Unavailable(result.describe())


class DnsPromoteHandler(PlaybookStep):
    """Make the new site's server the zone's primary (its own site's copy of the data)."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        zone = _zone(ctx, step.target)
        return bool(accepting_now(ctx, zone, [step.params["server"]]))

    def call(self, step: Step, ctx: StepContext) -> PlaybookCall:
        zone = _zone(ctx, step.target)
        promotion = zone.promote[step.site or ""]
        return playbook_call(
            ctx,
            step,
            "dns-role.yml",
            step.hosts,
            {
                "dns_zone": zone.name,
                "dns_action": "promote",
                # The topology's command line, templated by Ansible on purpose.
                "dns_command": AnsibleTemplate(promotion.promote_command),
            },
        )

    def verify(self, step: Step, ctx: StepContext) -> None:
        if not self.check(step, ctx):
            raise Unavailable(
                f"{step.params['server']} does not take updates for {step.target} yet"
            )


class DnsDemoteHandler:
    """After a failover, the old primary may come back still thinking it is primary:
    demote it to a secondary of the current one, so one server owns the zone."""

    def _primaries(self, step: Step, ctx: StepContext) -> list[str]:
        return accepting_now(ctx, _zone(ctx, step.target), step.params["servers"])

    def check(self, step: Step, ctx: StepContext) -> bool:
        return len(self._primaries(step, ctx)) <= 1

    def apply(self, step: Step, ctx: StepContext) -> None:
        zone = _zone(ctx, step.target)
        standby = step.site or ""
        primaries = self._primaries(step, ctx)
        stale = zone.promote[standby]
        keep = [p for p in primaries if p != str(stale.server)]
        if str(stale.server) not in primaries or not keep:
            raise Failed(
                f"{zone.name}: primaries are {', '.join(primaries)}; cannot tell which to keep"
            )
        primary = parse_server(keep[0])
        demote = {
            "dns_zone": zone.name,
            "dns_action": "demote",
            # {primary} reaches the command from dns_fill, unsafe and shell-quoted.
            "dns_command": AnsibleTemplate(
                fill_for_ansible(stale.demote_command, "dns_fill", ["primary"])
            ),
            "dns_fill": {"primary": primary.address},
        }
        run_call(ctx, step, playbook_call(ctx, step, "dns-role.yml", (stale.host,), demote))

    def verify(self, step: Step, ctx: StepContext) -> None:
        primaries = self._primaries(step, ctx)
        if len(primaries) > 1:
            raise Unavailable(f"{step.target} still has {len(primaries)} primaries: {primaries}")


class DnsVerifyHandler:
    """Every zone, every authoritative server it should expect, answers the new values."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        pass

    def verify(self, step: Step, ctx: StepContext) -> None:
        per_zone = step.params.get("zones") or {}
        problems = []
        for zone in ctx.topology.dns.zones:
            servers = (
                _servers(per_zone[zone.name]) if zone.name in per_zone else zone.verify_servers
            )
            result = verify(
                zone.name,
                changes_for_site(zone, step.site or ""),
                servers,
                timeout=VERIFY_TIMEOUT_S,
            )
            if not result.ok:
                problems.append(result.describe())
        if problems:
            raise Unavailable("; ".join(problems))
