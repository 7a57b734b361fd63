"""The operation lease: one holder at a time, a fencing epoch, and writes that ZooKeeper
itself refuses once the epoch has moved on.

Why an epoch and not just the lock: a leader frozen past its session timeout (SIGSTOP, a
long GC pause, a partition) still believes it holds the lock when it wakes. Every write
it makes is a ZooKeeper transaction that first checks the epoch znode's version; the
successor bumped that version when it took the lease, so the stale write fails as a whole.
The same transaction also checks that our own lock node still exists: between a successor
taking the lock and bumping the epoch, the epoch alone would still let the stale write in.

kazoo does not interrupt us on SUSPENDED or LOST (lab notes), so the lease watches the
session itself: while suspended, `ensure()` waits (bounded) for the connection and then
re-verifies that our lock node and our epoch are still in place before any side effect.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import BadVersionError, LockTimeout, NodeExistsError, NoNodeError
from kazoo.recipe.lock import Lock

from orchestrator.coordination.client import translated
from orchestrator.coordination.paths import ZkPaths
from orchestrator.errors import Conflict, LeaseLost, Locked, Unavailable

log = logging.getLogger(__name__)


class Lease:
    def __init__(
        self,
        client: KazooClient,
        paths: ZkPaths,
        identifier: str,
        *,
        reconnect_wait: float = 10.0,
    ) -> None:
        self._client = client
        self._paths = paths
        self.identifier = identifier
        self._reconnect_wait = reconnect_wait
        self._lock = Lock(client, paths.lock, identifier)
        self._connected = threading.Event()
        self._connected.set()
        self._lost = False
        self.epoch = 0
        client.add_listener(self._on_state)

    # Called on kazoo's thread: only flip flags, never block or call ZooKeeper here.
    def _on_state(self, state: str) -> None:
        if state == KazooState.LOST:
            self._lost = True
            self._connected.clear()
            if self._lock.is_acquired:  # a process that never took it has nothing to lose
                log.warning("lost the ZooKeeper session: the lease is gone")
        elif state == KazooState.SUSPENDED:
            self._connected.clear()
            log.warning("ZooKeeper connection suspended: no side effect until re-verified")
        else:
            if not self._connected.is_set():
                # The pair of lines bounds the window in which nothing may be written.
                log.warning("ZooKeeper connection back: acting again once the lease is re-verified")
            self._connected.set()

    def acquire(self, wait: float = 0.0) -> int:
        """Take the lease and bump the epoch; Locked names the holder.

        `wait` > 0 waits that long for the holder to go: a crashed holder's lock node
        lives on until its session expires, which a resume should simply wait out.
        """
        with translated("taking the operation lease"):
            self._client.ensure_path(self._paths.root)
            try:
                got = self._lock.acquire(blocking=wait > 0, timeout=wait or None)
            except LockTimeout:
                got = False
            if not got:
                holders = [h for h in self._lock.contenders() if h != self.identifier]
                raise Locked(holders[0] if holders else "another sitectl (unnamed)")
        try:
            with translated("bumping the fencing epoch"):
                with contextlib.suppress(NodeExistsError):
                    self._client.create(self._paths.epoch, self.identifier.encode())
                stat = self._client.set(self._paths.epoch, self.identifier.encode())
        except BaseException:
            # Without a new epoch the lock is no lease: held on, it would only keep every
            # other sitectl out until this session ends.
            with contextlib.suppress(Exception):
                self._lock.release()
            raise
        self.epoch = stat.version
        log.info("took the operation lease as %s with epoch %d", self.identifier, self.epoch)
        return self.epoch

    def release(self) -> None:
        """Give the lock back and stop listening to the session, even when the release
        fails (its node then dies with the session): a listener left behind would be
        called on every state change for the rest of a long-running controller's life,
        one more for each leadership term."""
        try:
            with translated("releasing the operation lease"):
                self._lock.release()
        finally:
            self._client.remove_listener(self._on_state)

    def interrupted(self) -> str | None:
        """Why the lease cannot be trusted this instant, or None: a running playbook is
        cancelled on it. Never blocks and never calls ZooKeeper (it is asked every tenth
        of a second); `ensure` is the full check."""
        if self._lost:
            return "the ZooKeeper session expired: another controller may lead now"
        if not self._connected.is_set():
            return "ZooKeeper connection suspended: stopping before any further change"
        return None

    @property
    def held(self) -> bool:
        return self._lock.is_acquired and not self._lost

    def ensure(self) -> None:
        """Return only if we still hold the lease at our epoch; raise LeaseLost otherwise."""
        if self._lost:
            raise LeaseLost("the ZooKeeper session expired: another controller may lead now")
        if not self._connected.is_set():
            if not self._connected.wait(self._reconnect_wait):
                raise LeaseLost(
                    f"ZooKeeper unreachable for {self._reconnect_wait:.0f} s: stopping before "
                    "any further change"
                )
            if self._lost:
                raise LeaseLost("the ZooKeeper session expired while disconnected")
            log.info("ZooKeeper connection back: re-verifying the lease before acting")
        try:
            self._verify()
        except Unavailable as exc:
            self._verify_after_drop(exc)

    def _verify_after_drop(self, error: Unavailable) -> None:
        """The connection dropped under the check (an expiry not yet reported, the
        server going away): "cannot tell" is not "still held". Wait, as for a
        suspension, for kazoo's verdict or a check that goes through."""
        deadline = time.monotonic() + self._reconnect_wait
        while time.monotonic() < deadline:
            time.sleep(0.05)
            if self._lost:
                raise LeaseLost("the ZooKeeper session expired: another controller may lead now")
            if self._connected.is_set():
                with contextlib.suppress(Unavailable):
                    self._verify()
                    return
        raise LeaseLost(
            f"could not verify the lease for {self._reconnect_wait:.0f} s ({error}): stopping "
            "before any further change"
        )

    def _verify(self) -> None:
        with translated("verifying the operation lease"):
            node = self._lock.node
            if not self._lock.is_acquired or node is None:
                raise LeaseLost("the operation lock is not held")
            if self._client.exists(f"{self._paths.lock}/{node}") is None:
                raise LeaseLost("our lock node is gone: another controller may lead now")
            stat = self._client.exists(self._paths.epoch)
        if stat is None or stat.version != self.epoch:
            current = "none" if stat is None else str(stat.version)
            raise LeaseLost(f"fencing epoch moved from {self.epoch} to {current}")

    # Fenced writes: each is one transaction whose first operations check the epoch and
    # our lock node.

    def set(self, path: str, data: bytes, version: int = -1) -> int:
        """Set `path` if the epoch is ours and (given a version) nobody changed it."""
        result = self._commit(lambda tx: tx.set_data(path, data, version), path, data)
        return int(result.version)

    def create(self, path: str, data: bytes) -> None:
        self._commit(lambda tx: tx.create(path, data), path, data)

    def delete(self, path: str, version: int = -1) -> None:
        self._commit(lambda tx: tx.delete(path, version), path, None)

    def _commit(self, add: Callable[[Any], None], path: str, data: bytes | None) -> Any:
        """One fenced transaction, retried over a connection loss.

        A retry cannot tell whether the first attempt landed before the connection
        dropped; if it did, the retry meets its own write as a conflict. The record then
        already holds exactly our bytes, so that conflict is our success, not someone's.
        """
        deadline = time.monotonic() + self._reconnect_wait
        retried = False
        while True:
            self.ensure()
            try:
                return self._commit_once(add, path)
            except Unavailable:
                if time.monotonic() > deadline:
                    raise
                retried = True
                time.sleep(0.2)
            except Conflict:
                if retried and self._holds(path, data):
                    log.info("write to %s had landed before the connection dropped", path)
                    with translated(f"reading {path}"):
                        return self._client.exists(path)
                raise

    def _holds(self, path: str, data: bytes | None) -> bool:
        with translated(f"reading {path}"):
            stat = self._client.exists(path)
            if data is None:
                return stat is None
            return stat is not None and self._client.get(path)[0] == data

    def _commit_once(self, add: Callable[[Any], None], path: str) -> Any:
        # A lease that never took the lock checks a node no lock has: ZooKeeper refuses
        # it, by the epoch first if that moved too.
        node = self._lock.node or "no-lock-held"
        with translated(f"writing {path}"):
            tx = self._client.transaction()
            tx.check(self._paths.epoch, self.epoch)
            tx.check(f"{self._paths.lock}/{node}", -1)  # -1: any version, as long as it exists
            add(tx)
            results = tx.commit()
        epoch_result, lock_result, write_result = results
        if isinstance(epoch_result, BadVersionError | NoNodeError):
            raise LeaseLost(f"write to {path} refused: the fencing epoch is no longer {self.epoch}")
        if isinstance(lock_result, NoNodeError):
            raise LeaseLost(f"write to {path} refused: our lock node is gone")
        if isinstance(write_result, BadVersionError):
            raise Conflict(f"{path} changed since it was read")
        if isinstance(write_result, NodeExistsError):
            raise Conflict(f"{path} already exists")
        if isinstance(write_result, NoNodeError):
            raise Conflict(f"{path} does not exist")
        if isinstance(write_result, Exception):
            raise write_result
        return write_result


def newest_epoch(client: KazooClient, paths: ZkPaths) -> int | None:
    """The fencing epoch as the quorum holds it now (None before any lease was taken):
    sync() first, so a server that lags behind a newer lease cannot answer for it."""
    with translated("reading the fencing epoch"):
        client.sync(paths.epoch)
        stat = client.exists(paths.epoch)
    return None if stat is None else int(stat.version)


def stale_epoch(ours: int, newest: int | None, doing: str) -> str | None:
    """Why a step at epoch `ours` may not go on to `doing`, or None (pure)."""
    if newest == ours:
        return None
    held = "no epoch at all" if newest is None else f"epoch {newest}"
    return (
        f"epoch {ours} is stale: ZooKeeper holds {held} (a newer operation has taken the "
        f"lease); not {doing}"
    )


def take_term_epoch(client: KazooClient, paths: ZkPaths, identifier: str) -> int:
    """A new fencing epoch for a leadership term, from the same counter as operations:
    take the operation lease without waiting, which bumps the epoch, and give it back.
    Locked (naming the holder) while an operation runs: its epoch must not move under
    it, so the term waits for it to end."""
    lease = Lease(client, paths, identifier)
    try:
        epoch = lease.acquire()
    except BaseException:
        client.remove_listener(lease._on_state)
        raise
    lease.release()
    return epoch
