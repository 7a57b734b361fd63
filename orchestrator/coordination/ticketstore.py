"""The site ticket in ZooKeeper (`ZkPaths.ticket`): read it, renew it, and move it.

Renewal is the holder's controllers' job and is not under the operation lease: it is a
compare-and-set on the ticket's version that only the holder's site attempts, so a
renewal that read the ticket before a grant, a revocation or a release is refused by
ZooKeeper itself. It needs a write, hence a quorum: a site cut off in a minority cannot
renew. Grant, release and revocation move the ticket as steps of an operation (or by
`sitectl ticket grant`): each is one transaction through the Lease, which checks the
operation's epoch and the holder's lock node before it writes (coordination/lease.py).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError

from orchestrator.coordination.client import translated
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.ticket import Ticket, granted
from orchestrator.errors import Conflict, Failed, SitectlError

log = logging.getLogger(__name__)
Found = tuple[Ticket, int]  # the ticket and its znode's version
# Renewals bump the version every probe interval: a move retries its compare-and-set.
MOVE_ATTEMPTS = 5


class TicketStore:
    def __init__(self, client: KazooClient, paths: ZkPaths) -> None:
        self._client = client
        self.path = paths.ticket
        self._paths = paths

    def read(self) -> Found | None:
        with translated("reading the site ticket"):
            try:
                raw, stat = self._client.get(self.path)
            except NoNodeError:
                return None
        try:
            return Ticket.from_json(raw), stat.version
        except ValueError as exc:  # json's errors and UnicodeDecodeError are ValueErrors
            raise Failed(
                f"the site ticket at {self.path} is not one sitectl wrote ({exc}) — make sure "
                "only sitectl may write under its ZooKeeper root (zookeeper.auth), then "
                "grant the ticket again (sitectl ticket grant)"
            ) from None

    # The holder's controllers: unfenced, compare-and-set on the version.

    def renew(self, site: str, now: float) -> Ticket | None:
        """Renew `site`'s ticket; None if `site` does not hold it, it was revoked, or it
        changed under us. Only over a live session: a suspended one may not be ours."""
        if self._client.state != KazooState.CONNECTED:
            return None
        found = self.read()
        return self.renew_read(found, site, now) if found else None

    def renew_read(self, found: Found, site: str, now: float) -> Ticket | None:
        """Renew the ticket as it was read: refused if it changed since."""
        ticket, version = found
        if not ticket.renewable_by(site):
            return None
        renewed = ticket.renewed(now)
        with translated("renewing the site ticket"):
            try:
                self._client.set(self.path, renewed.to_json(), version=version)
            except (BadVersionError, NoNodeError):
                return None
        return renewed

    def bootstrap(self, site: str, now: float, ttl: float) -> Ticket | None:
        """Create the ticket for `site` if none exists (a cluster set up before tickets);
        None if one does. Its epoch is the operation lease's current one."""
        with translated("creating the site ticket"):
            epoch = self._client.exists(self._paths.epoch)
            ticket = granted(site, epoch.version if epoch else 0, now, ttl)
            self._client.ensure_path(self._paths.root)
            try:
                self._client.create(self.path, ticket.to_json())
            except NodeExistsError:
                return None
        return ticket

    # Moves: fenced by the operation lease.

    def grant(
        self, lease: Lease, site: str, now: float, ttl: float, forced: str | None = None
    ) -> Ticket:
        """Give the ticket to `site` at the lease's epoch, whoever held it: the caller
        decided it may (a fence/wait passed, a release, or a person's --force)."""
        ticket = self._move(
            lease, lambda before: granted(site, lease.epoch, now, ttl, forced, before)
        )
        assert ticket is not None
        return ticket

    def release(self, lease: Lease, site: str, now: float) -> Ticket | None:
        """Release `site`'s ticket; None (nothing written) if `site` does not hold it."""
        return self._move(lease, lambda t: t.released(now) if t and t.holder == site else None)

    def revoke(self, lease: Lease, site: str, now: float) -> Ticket | None:
        """Stop `site` renewing its ticket; None (nothing written) if it does not hold it
        or it is revoked already (a resumed fence/wait)."""
        return self._move(
            lease,
            lambda t: t.revoked(now) if t and t.holder == site and t.revoked_at is None else None,
        )

    def _move(
        self, lease: Lease, change: Callable[[Ticket | None], Ticket | None]
    ) -> Ticket | None:
        for _ in range(MOVE_ATTEMPTS):
            found = self.read()
            ticket = change(found[0] if found else None)
            if ticket is None or (found and found[0] == ticket):
                return ticket
            try:
                if found is None:
                    with translated("preparing the site ticket"):
                        self._client.ensure_path(self._paths.root)
                    lease.create(self.path, ticket.to_json())
                else:
                    lease.set(self.path, ticket.to_json(), found[1])
            except Conflict:
                continue  # a renewal (or another move) came between: read it again
            return ticket
        raise Failed(f"the site ticket kept changing under {MOVE_ATTEMPTS} attempts to write it")


class LeasedTickets:
    """The ticket as an operation moves it: the store bound to the operation's lease."""

    def __init__(self, store: TicketStore, lease: Lease) -> None:
        self._store, self._lease = store, lease

    def read(self) -> Ticket | None:
        found = self._store.read()
        return found[0] if found else None

    def grant(self, site: str, now: float, ttl: float) -> Ticket:
        return self._store.grant(self._lease, site, now, ttl)

    def release(self, site: str, now: float) -> Ticket | None:
        return self._store.release(self._lease, site, now)

    def revoke(self, site: str, now: float) -> Ticket | None:
        return self._store.revoke(self._lease, site, now)


def read_quietly(store: TicketStore) -> Found | None:
    """The ticket for a display: None when ZooKeeper cannot say."""
    with contextlib.suppress(SitectlError):
        return store.read()
    return None
