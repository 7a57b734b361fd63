"""A person's hand on the site ticket: `sitectl ticket show` and `sitectl ticket grant`.

A grant by hand is the lone survivor's way back (issue 18, item 5): with its peers gone,
the active site's ticket expired and the site fenced itself. Without --force a person
may only give an expired ticket back to the site that held it (coordination/ticket.py,
`refuse_grant`); anything else may make two sites active and needs --force with a
reason. Either way it takes the operation lease, so it is fenced like any operation's
write and never races one, and it is audited: who, when, why.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from orchestrator.audit import identity, os_user
from orchestrator.config.model import Topology
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.ticket import Ticket, refuse_grant
from orchestrator.coordination.ticketstore import TicketStore
from orchestrator.deadman.override import OverrideResult, send_override
from orchestrator.engine.session import Session, audit_log, release_quietly
from orchestrator.errors import ConfigError


class GrantRefused(ConfigError):
    pass


def show_ticket(s: Session) -> Ticket | None:
    return s.store.ticket()


def grant_by_hand(
    s: Session, site: str, force: str | None, *, clock: Callable[[], float] = time.time
) -> Ticket:
    """Grant the ticket to `site`; GrantRefused (one line) when it may not be."""
    topo = s.topology
    if site not in topo.datacenters():
        raise GrantRefused(
            f"{site!r} is not a datacenter — grant the ticket to one of: "
            f"{', '.join(topo.datacenters())}"
        )
    lease = Lease(s.client, s.paths, identity())
    lease.acquire()
    try:
        store = TicketStore(s.client, s.paths)
        found = store.read()
        before = found[0] if found else None
        refusal = refuse_grant(before, site, clock(), topo.policy.clock_drift)
        if refusal and not force:
            raise GrantRefused(f"not granting the site ticket to {site}: {refusal}")
        ticket = store.grant(lease, site, clock(), topo.ticket_ttl, forced=force)
        s.audit().write(
            "ticket.granted",
            site=site,
            by=os_user(),
            epoch=lease.epoch,
            forced=force,
            reason=force,
            refusal_overridden=refusal if force else None,
            previous_holder=before.holder if before else None,
            previous_renewed_at=before.renewed_at if before else None,
        )
        return ticket
    finally:
        release_quietly(lease)


def grant_without_quorum(topo: Topology, site: str, reason: str | None) -> OverrideResult:
    """The lone survivor's override with no ZooKeeper quorum anywhere: sent to `site`'s
    dead-man agents, audited here (no ZooKeeper to record it). GrantRefused (one line)
    when it may not be sent."""
    if reason is None:
        raise GrantRefused("--no-quorum needs --force REASON: say why the site may serve alone")
    if site not in topo.datacenters():
        raise GrantRefused(
            f"{site!r} is not a datacenter — name one of: {', '.join(topo.datacenters())}"
        )
    if topo.deadman is None:
        raise GrantRefused(
            f"{topo.base_dir}: the topology has no 'deadman' section, so no agent fenced "
            f"{site}: start its application as usual"
        )
    result = send_override(topo, site, reason)
    audit_log(topo).write(
        "ticket.granted",
        site=site,
        by=os_user(),
        forced=reason,
        reason=reason,
        no_quorum=True,
        acknowledged=list(result.acknowledged),
        silent=list(result.silent),
    )
    return result
