"""The site ticket as data, and its arithmetic. Pure: no I/O, no clock of its own.

The active site holds a ticket in ZooKeeper (`coordination/ticketstore.py` reads and
writes it); its controllers renew it every cycle, which only a site in ZooKeeper's
majority can do. A site whose ticket goes unrenewed for `fence_after` fences itself, and
the ticket may be granted elsewhere only once its last renewal + ttl + the clock-drift
margin has passed (booth's rule), unless the old site's stop steps really succeeded.

Times are seconds since the epoch (time.time()) of the machine that wrote them; the
clock-drift margin covers the difference between two machines' clocks.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class Ticket:
    holder: str | None  # the site that may serve; None once released
    epoch: int  # the operation lease's epoch when it was granted (0: bootstrapped)
    granted_at: float
    renewed_at: float  # the last renewal (a grant counts as one)
    ttl: float
    # Set by a failover's fence/wait: the holder may no longer renew it, so its last
    # renewal, and with it the instant the wait passes, is fixed.
    revoked_at: float | None = None
    released_at: float | None = None
    forced: str | None = None  # the reason of `sitectl ticket grant --force`, if forced
    # The site this ticket was taken from without a release (a failover revoked it, or
    # it expired or was forced away): that site must stay fenced, and its controller has
    # its dead-man agents fence it the moment it can read this (fence on return).
    lost_by: str | None = None

    @property
    def expires_at(self) -> float:
        return self.renewed_at + self.ttl

    def passes_at(self, drift: float) -> float:
        """When another site may take it: last renewal + ttl + the clock-drift margin."""
        return self.expires_at + drift

    def expired(self, now: float, drift: float) -> bool:
        return now >= self.passes_at(drift)

    def renewable_by(self, site: str) -> bool:
        return self.holder == site and self.revoked_at is None

    # Transitions: each gives the ticket as it is to be written.

    def renewed(self, now: float) -> Ticket:
        return replace(self, renewed_at=max(now, self.renewed_at))

    def revoked(self, now: float) -> Ticket:
        return self if self.revoked_at is not None else replace(self, revoked_at=now)

    def released(self, now: float) -> Ticket:
        return replace(self, holder=None, released_at=now)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Ticket:
        """The ticket as written; ValueError naming the field for anything else (a node
        anyone could write must not reach the arithmetic below as a string)."""
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON object was expected, not {type(data).__name__}")
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        for name, value in known.items():
            kinds = _FIELD_KINDS[name]
            wrong = not isinstance(value, kinds) or isinstance(value, bool)
            if wrong or (isinstance(value, float) and not math.isfinite(value)):
                raise ValueError(f"field {name!r} holds {value!r}")
        try:
            return cls(**known)
        except TypeError as exc:  # a field that must be there is missing
            raise ValueError(str(exc)) from None

    def describe(self, now: float) -> str:
        """One line for people: who holds it, and until when."""
        if self.holder is None:
            return f"released at {clock_text(self.released_at or self.renewed_at)}: nobody holds it"
        left = self.expires_at - now
        state = f"expires in {left:.1f} s" if left > 0 else f"expired {-left:.1f} s ago"
        revoked = f", revoked at {clock_text(self.revoked_at)}" if self.revoked_at else ""
        forced = f", granted by force ({self.forced})" if self.forced else ""
        return (
            f"held by {self.holder} (epoch {self.epoch}), renewed at "
            f"{clock_text(self.renewed_at)}, ttl {self.ttl:g} s: {state}{revoked}{forced}"
        )


def granted(
    site: str,
    epoch: int,
    now: float,
    ttl: float,
    forced: str | None = None,
    before: Ticket | None = None,
) -> Ticket:
    """A new ticket for `site`, replacing `before`: a holder that did not release it lost
    it, and is named so (`lost_by`)."""
    lost_by = before.lost_by if before is not None and before.holder == site else None
    if before is not None and before.holder not in (None, site):
        lost_by = before.holder
    return Ticket(
        site, epoch, granted_at=now, renewed_at=now, ttl=ttl, forced=forced, lost_by=lost_by
    )


@dataclass(frozen=True)
class Wait:
    """What a failover's fence/wait decides: pass now, or at `until`, and why."""

    until: float | None  # None: passes at once
    sentence: str


def fence_wait(
    ticket: Ticket | None, old_site: str, old_stopped: bool, drift: float, now: float
) -> Wait:
    """When a failover from `old_site` may make anything at the new site writable."""
    if ticket is None:
        return Wait(None, f"no ticket recorded: nothing of {old_site}'s to wait for")
    if ticket.holder != old_site:
        holder = ticket.holder or "nobody"
        return Wait(None, f"{old_site} does not hold the ticket ({holder} does): no wait")
    if old_stopped:
        return Wait(
            None,
            f"{old_site}'s stop steps succeeded (its application is stopped and its volumes "
            "unmounted): no wait",
        )
    until = ticket.passes_at(drift)
    arithmetic = (
        f"last renewal {clock_text(ticket.renewed_at)} + ttl {ticket.ttl:g} s + clock drift "
        f"{drift:g} s = {clock_text(until)}"
    )
    if now >= until:
        return Wait(None, f"{old_site}'s ticket has expired: {arithmetic}, passed")
    return Wait(
        until,
        f"{old_site}'s stop steps did not succeed: waiting until {old_site}'s ticket has "
        f"expired ({arithmetic}), {until - now:.1f} s from now",
    )


def refuse_grant(ticket: Ticket | None, site: str, now: float, drift: float) -> str | None:
    """Why granting the ticket to `site` by hand without --force is refused, or None.

    Without force a person may only give a lost ticket back to the site that held it,
    once it has expired + margin (a lone survivor whose quorum returned): any other
    grant could make two sites active, and needs --force with a reason.
    """
    if ticket is None:
        return "no ticket is recorded yet — the active site's controller creates it"
    if ticket.holder != site:
        return (
            f"{site} does not hold the ticket ({ticket.holder or 'nobody'} does) — granting "
            "it elsewhere by hand may make two sites active; a failover moves it, or use "
            "--force REASON"
        )
    if not ticket.expired(now, drift) and ticket.revoked_at is None:
        return f"{site} holds a live ticket ({ticket.describe(now)}) — nothing to grant"
    if ticket.revoked_at is not None:
        return (
            f"{site}'s ticket was revoked by a failover at {clock_text(ticket.revoked_at)} — "
            "giving it back may make two sites active; use --force REASON"
        )
    return None


def refuse_start(ticket: Ticket | None, site: str, active_site: str, now: float) -> str | None:
    """Why `site` may not start its application now, or None: the start gate (a unit's
    `ExecStartPre=`, the lab's role start command), so that a site that boots or heals
    after losing a failover never accepts a write. It may start only while it holds the
    ticket and no failover has revoked it; before any ticket exists (a cluster set up
    before tickets, or no controller yet), only the active site may."""
    if ticket is None:
        if site == active_site:
            return None
        return f"no ticket is recorded and {active_site}, not {site}, is the active site"
    if ticket.holder != site:
        return f"{site} does not hold the site ticket ({ticket.holder or 'nobody'} does)"
    if ticket.revoked_at is not None:
        return f"{site}'s ticket was revoked by a failover at {clock_text(ticket.revoked_at)}"
    # An expired ticket still held and not revoked: no failover has taken it. Expiry is
    # the dead-man agent's business (it fences a site whose renewals stop); refusing here
    # would keep an operation run without controllers from ever starting its site.
    del now
    return None


_TEXT_OR_NONE = (str, type(None))
_TIME = (int, float)
_FIELD_KINDS: dict[str, tuple[type, ...]] = {
    "holder": _TEXT_OR_NONE,
    "epoch": (int,),
    "granted_at": _TIME,
    "renewed_at": _TIME,
    "ttl": _TIME,
    "revoked_at": (*_TIME, type(None)),
    "released_at": (*_TIME, type(None)),
    "forced": _TEXT_OR_NONE,
    "lost_by": _TEXT_OR_NONE,
}


def clock_text(at: float | None) -> str:
    """A ticket time as logs show it: UTC, to the tenth of a second."""
    if at is None:
        return "never"
    whole = time.strftime("%H:%M:%S", time.gmtime(at))
    return f"{whole}.{int((at % 1) * 10)}Z"
