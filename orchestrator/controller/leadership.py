"""Leader election among the controllers, under `ZkPaths.election`.

A kazoo Lock rather than kazoo's Election: Election.run() calls the leader function and
never interrupts it on SUSPENDED or LOST (lab notes), so the leader would go on deciding
on a session it may no longer own. Here the daemon asks `verified()` before every cycle
and before every action: connected now, not LOST since we won, and our lock node still
there, owned by our session. Only a quorum can answer that read, so a controller cut
off from the quorum can never pass it, whatever it sees locally.

This is separate from the operation lease (`ZkPaths.lock`): leading decides *whether*
to act; the lease, taken by the engine, decides who may change the world, so a leader
and an operator's manual operation can never run two operations at once. A leadership
term does take its fencing epoch from the lease's counter, though (`take_term_epoch`):
one counter orders every leader's and every operation's writes, on every ledger.
"""

from __future__ import annotations

import logging
import threading

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import LockTimeout, NoNodeError
from kazoo.recipe.lock import Lock

from orchestrator.coordination.client import translated
from orchestrator.coordination.lease import take_term_epoch
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import Locked, SitectlError

log = logging.getLogger(__name__)


class Leadership:
    def __init__(self, client: KazooClient, paths: ZkPaths, identifier: str) -> None:
        self._client = client
        self._paths = paths
        self.identifier = identifier
        self._connected = threading.Event()
        if client.state == KazooState.CONNECTED:
            self._connected.set()
        self._lost = False
        self._lock: Lock | None = None
        self._session: int | None = None
        self._term: int | None = None  # this term's fencing epoch, once taken
        self._term_said = ""
        self._said = "not elected"  # the last reason logged, so each is logged once
        client.add_listener(self._on_state)

    # kazoo's thread: flip flags only.
    def _on_state(self, state: str) -> None:
        if state == KazooState.CONNECTED:
            self._connected.set()
            return
        self._connected.clear()
        if state == KazooState.LOST:
            self._lost = True

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def contend(self, timeout: float) -> bool:
        """Try (for at most `timeout` s) to become the leader; True if we are now.

        One Lock object per session, kept across attempts: when an attempt ends while
        the connection is down, kazoo cannot delete our contender node, and only the
        same object finds it again (by its uuid prefix) instead of queueing a second
        node behind it. A fresh object per attempt leaves such orphans alive for the
        whole session, ahead of every later contender: nobody would ever lead again.
        """
        # kazoo has no session id while reconnecting: unknown is not "new".
        session = self._client.client_id[0] if self._client.client_id else None
        renewed = session is not None and self._lock is not None and session != self._session
        if self._lost or renewed:
            log.info(
                "contending afresh: %s",
                "the session was lost"
                if self._lost
                else f"new session {session} (was {self._session})",
            )
            self._drop()  # that session's nodes died with it
            self._lost = False
        if not self.connected:
            return False
        if self._lock is None:
            self._lock = Lock(self._client, self._paths.election, self.identifier)
            self._session = session
        if self._lock.is_acquired:
            self._take_term()
            return True
        try:
            with translated("contending for leadership"):
                try:
                    got = self._lock.acquire(blocking=True, timeout=timeout)
                except LockTimeout:
                    got = False
        except SitectlError as exc:
            log.info("could not contend for leadership: %s", exc)
            got = False
        if got:
            log.info("won the election as %s", self.identifier)
            self._take_term()
        return bool(got)

    def _take_term(self) -> None:
        """This term's fencing epoch, if not taken yet: asked on every cycle until it is."""
        if self._term is not None:
            return
        try:
            self._term = take_term_epoch(self._client, self._paths, self.identifier)
        except Locked as exc:
            why = (
                f"this term's fencing epoch waits for the operation lease, held by {exc.holder}: "
                "no canary is written until then"
            )
        except SitectlError as exc:
            why = f"could not take this term's fencing epoch: {exc}"
        else:
            log.info("leading with fencing epoch %d", self._term)
            self._term_said = ""
            return
        if why != self._term_said:
            log.info("%s", why)
            self._term_said = why

    def verified(self) -> bool:
        """Whether we lead now, checked against ZooKeeper (a quorum read)."""
        why = self._not_leading()
        if why != self._said:
            if why and why != "not elected":
                log.info("not the verified leader: %s", why)
            self._said = why
        return why == ""

    def _not_leading(self) -> str:
        lock = self._lock
        if lock is None or not lock.is_acquired:
            return "not elected"
        if self._lost:
            return "the ZooKeeper session expired"
        if not self.connected:
            return "the ZooKeeper connection is suspended"
        session = self._client.client_id[0] if self._client.client_id else None
        if session != self._session:
            return "a new ZooKeeper session: our election node died with the old one"
        try:
            with translated("verifying leadership"):
                # sync() first: a read served by a lagging follower must not confirm us.
                self._client.sync(self._paths.election)
                stat = self._client.exists(f"{self._paths.election}/{lock.node}")
        except SitectlError as exc:
            return str(exc)
        if stat is None:
            return "our election node is gone"
        if stat.ephemeralOwner != session:
            return "our election node belongs to another session"
        return ""

    @property
    def epoch(self) -> int | None:
        """This leadership term's fencing epoch, or None while we lead without one (an
        operation held the lease when we won) or do not lead. It comes from the same
        counter as every operation's epoch (`coordination/lease.py`), bumped once when
        the term began: every later leader and every later operation holds a higher one,
        the order fences need (adapters/ldap_fence.py), and the storage, DNS and LDAP
        ledgers speak of one sequence. A leader frozen past its session keeps its old
        epoch, which is exactly what its late writes must carry to be refused."""
        lock = self._lock
        if lock is None or not lock.is_acquired:
            return None
        return self._term

    def leader(self) -> str | None:
        return current_leader(self._client, self._paths)

    def resign(self) -> None:
        self._drop()
        self._client.remove_listener(self._on_state)

    def _drop(self) -> None:
        if self._lock is not None:
            self._best_effort_release(self._lock)
        self._lock, self._session, self._term = None, None, None

    @staticmethod
    def _best_effort_release(lock: Lock) -> None:
        # After LOST the node is gone already; while SUSPENDED the delete may fail and
        # the node then dies with the session. Either way nobody waits on us.
        try:
            lock.release()
        except Exception as exc:  # kazoo raises several kinds here; none is actionable
            log.debug("releasing the election node: %s", exc)


def current_leader(client: KazooClient, paths: ZkPaths) -> str | None:
    """Who leads (the election's first contender), as far as ZooKeeper says now."""
    try:
        with translated("reading the election"):
            contenders = Lock(client, paths.election).contenders()
    except (SitectlError, NoNodeError):
        return None
    return str(contenders[0]) if contenders else None
