"""`sitectl status` for people: one row per site (patronictl list), and a few lines for
what is not a site's (the lease, a pause, the current or last operation). Pure: a
StatusView, the topology's sites and the time in, text out; the CLI draws it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.coordination.ticket import Ticket
from orchestrator.engine.views import StatusView

COLUMNS = ("site", "role", "ticket", "controller", "sees", "reported")


@dataclass(frozen=True)
class SiteRow:
    site: str
    role: str  # active | standby | witness
    ticket: str  # this site's part in the site ticket, "" when it has none
    controller: str  # leader | follower | none
    sees: str  # its controller's last view of every site
    reported: str  # how long ago that view was published

    def cells(self) -> tuple[str, ...]:
        return (self.site, self.role, self.ticket, self.controller, self.sees, self.reported)


def site_rows(info: StatusView, sites: Mapping[str, str], now: float) -> list[SiteRow]:
    """One row per site of the topology (`sites`: name → kind), in the file's order."""
    controllers = {c["site"]: c for c in info.controllers or ()}
    rows = []
    for site, kind in sites.items():
        found = controllers.get(site)
        rows.append(
            SiteRow(
                site,
                _role(site, kind, info.active_site),
                ticket_cell(info.ticket, site, now),
                _controller(found),
                _sees(found),
                _reported(found, now),
            )
        )
    return rows


def _role(site: str, kind: str, active_site: str) -> str:
    if kind == "witness":
        return "witness"
    return "active" if site == active_site else "standby"


def ticket_cell(ticket: Ticket | None, site: str, now: float) -> str:
    if ticket is None:
        return ""
    if ticket.holder == site:
        if ticket.revoked_at is not None:
            return "held, revoked"
        left = ticket.expires_at - now
        return f"held, expires in {left:.1f} s" if left > 0 else f"held, expired {-left:.1f} s ago"
    if ticket.lost_by == site:
        return f"lost to {ticket.holder or 'nobody'}"
    return ""


def _controller(found: Mapping[str, Any] | None) -> str:
    if found is None:
        return "none"
    return "leader" if found.get("leader") else "follower"


def _sees(found: Mapping[str, Any] | None) -> str:
    if found is None:
        return ""
    seen = found.get("sees") or {}
    return ", ".join(f"{site} {status}" for site, status in sorted(seen.items())) or (
        "nothing seen yet"
    )


def _reported(found: Mapping[str, Any] | None, now: float) -> str:
    if found is None:
        return ""
    at = found.get("last_report")
    if not at:
        return "no report yet"
    # On the controller's own clock: a few seconds off is the clocks' drift, not age.
    return f"{max(now - float(at), 0.0):.0f} s ago"


def summary_lines(info: StatusView, now: float) -> list[str]:
    """What is the cluster's rather than a site's, one line each."""
    recorded = (
        "" if info.active_site_recorded else " (from the topology: no operation recorded yet)"
    )
    lines = [f"cluster {info.cluster}: {info.active_site} is active{recorded}"]
    holders = info.lock_holders
    lines.append(f"lease: {holders[0] if holders else 'free'}")
    if info.paused:
        lines.append(f"automation paused: {info.paused}")
    ticket = info.ticket.describe(now) if info.ticket else "none recorded yet"
    lines.append(f"site ticket: {ticket}")
    if not info.controllers:
        lines.append("controllers: none running (no automatic failover)")
    lines.append(evaluation_line(info.evaluation))
    return lines


def evaluation_line(evaluation: Mapping[str, Any] | None) -> str:
    """The leading controller's latest plan evaluation, on one line."""
    if not evaluation:
        return "plan evaluation: none recorded yet (the leading controller evaluates)"
    return f"plan evaluation at {when(float(evaluation['at']))}: {evaluation['verdict']}"


def operation_lines(info: StatusView) -> list[str]:
    op = info.operation
    if not op:
        return []
    state = "in progress" if op.in_progress else "last operation"
    lines = [
        f"{state}: {op.id} {op.mode} {op.from_site}→{op.to_site} "
        f"{op.status}, started {when(op.started)} by {op.by} ({op.reason}); "
        f"{op.steps_finished} steps finished"
        + (f"; running {', '.join(op.running_steps)}" if op.running_steps else "")
    ]
    for waiting in op.waiting_for:
        who = " or ".join(waiting["approvers"]) or "anyone allowed to operate"
        lines.append(
            f"waiting since {when(waiting['since'])} at {waiting['step']} for {who}: "
            f"sitectl approve {op.id} -r REASON (or reject)"
        )
    if op.accept_data_loss:
        lines.append(f"data loss accepted: {op.accept_data_loss}")
    if op.message:
        lines.append(op.message)
    return lines


def when(timestamp: float) -> str:
    """A recorded time as operators read it: local, with its zone."""
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(timestamp))
