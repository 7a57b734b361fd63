"""The controller's part of the site ticket: renew it while this site holds it, show it.

Every controller runs `TicketKeeper.cycle` four times per `fence_after` from a thread of
its own (controller/daemon.py `_ticket_loop`), leader or not: neither a slow probe nor
an operation the leader runs (a failover keeps the leader loop busy for many intervals)
may delay a renewal. Only a controller of the holder's site renews, only over
a live ZooKeeper session, and only by a compare-and-set that a write without a quorum
cannot pass (coordination/ticketstore.py): a site cut off in a minority stops renewing.

Each successful renewal is reported to every callback in `on_renewal`, with the ticket
as written: that is the one point from which the dead-man agents are fed as the holder,
so that they starve exactly when renewals stop, whatever the reason.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.config.model import Topology
from orchestrator.controller.http import Board, Metrics
from orchestrator.coordination.ticket import Ticket
from orchestrator.coordination.ticketstore import TicketStore
from orchestrator.errors import SitectlError

log = logging.getLogger("sitectl.controller")


@dataclass
class TicketKeeper:
    topo: Topology
    site: str
    store: TicketStore
    metrics: Metrics
    board: Board
    clock: Callable[[], float] = time.time
    # Called after each successful renewal with the ticket as written (see above).
    on_renewal: list[Callable[[Ticket], None]] = field(default_factory=list)
    _said: str = ""
    # What the last cycle read (None: no ticket, or not read) and whether it could read.
    _last: Ticket | None = None
    _read: bool = False

    @property
    def held_here(self) -> bool:
        """This site held the ticket when last read: a failed renewal now counts."""
        return self._last is not None and self._last.holder == self.site

    @property
    def lost_here(self) -> bool:
        """The last cycle read that this site lost the ticket to a failover (revoked, or
        taken without a release): it must be fenced, whatever it runs now."""
        ticket = self._last
        if not self._read or ticket is None:
            return False
        revoked_here = ticket.holder == self.site and ticket.revoked_at is not None
        return revoked_here or ticket.lost_by == self.site

    @property
    def held_elsewhere(self) -> bool:
        """The last cycle read the ticket and it is not this site's to renew."""
        if not self._read:
            return False
        ticket = self._last
        return ticket is None or ticket.holder != self.site or ticket.revoked_at is not None

    def cycle(self, active_site: str, connected: bool) -> bool:
        """Renew this site's ticket if it holds it; True on a successful renewal."""
        self._read = False
        if not connected:
            self._say(f"{self.site} cannot renew or read the site ticket: no ZooKeeper session")
            return False
        now = self.clock()
        try:
            found = self.store.read()
            if found is None and self.site == active_site:
                self._bootstrap(now)
                found = self.store.read()
            renewed = self.store.renew_read(found, self.site, now) if found else None
        except SitectlError as exc:
            self._say(f"{self.site} could not renew the site ticket: {exc}")
            return False
        ticket = renewed or (found[0] if found else None)
        self._last, self._read = ticket, renewed is None
        self._show(ticket, now)
        if renewed is not None:
            self._say(f"{self.site} holds the site ticket and renews it every cycle")
            self.metrics.ticket_renewals.inc()
            for callback in self.on_renewal:
                callback(renewed)
            return True
        self._say(self._not_renewed(ticket))
        return False

    def _bootstrap(self, now: float) -> None:
        created = self.store.bootstrap(self.site, now, self.topo.ticket_ttl)
        if created is not None:
            log.info(
                "no site ticket existed (a cluster set up before tickets): created it for "
                "the active site %s at epoch %d",
                self.site,
                created.epoch,
            )

    def _not_renewed(self, ticket: Ticket | None) -> str:
        if ticket is None:
            return (
                f"no site ticket recorded yet: {self.site} is not the active site, not creating it"
            )
        if ticket.holder != self.site:
            return f"{self.site} does not hold the site ticket ({ticket.holder or 'nobody'} does)"
        if ticket.revoked_at is not None:
            return f"{self.site}'s site ticket was revoked by a failover: no longer renewing it"
        return f"{self.site} could not renew the site ticket: it changed while being renewed"

    def _show(self, ticket: Ticket | None, now: float) -> None:
        self.metrics.ticket(self.topo.sites, ticket, now)
        self.board.update(
            ticket=None
            if ticket is None
            else {
                "holder": ticket.holder,
                "epoch": ticket.epoch,
                "renewed_at": ticket.renewed_at,
                "expires_at": ticket.expires_at,
                "revoked_at": ticket.revoked_at,
            },
            ticket_read_at=now,
        )

    def _say(self, sentence: str) -> None:
        # Once per change: a renewal every second would drown the decisions.
        if sentence != self._said:
            log.info("%s", sentence)
            self._said = sentence
