"""LDAP connections kept open between canaries: one bound connection per master.

The leader writes a canary on every master of the active site each canary interval (a
second on the lab). Opening a connection for each (TCP, StartTLS handshake, bind,
unbind) cost more CPU than anything else an idle controller did; a directory keeps a
bound connection open for as long as we like. The links belong to one thread (the
canary thread): an ldap3 connection is not safe to share between threads.

When a kept connection fails, it is closed and forgotten. If it failed fast (the master
restarted, or closed it while idle: the usual ways a kept connection dies), the work is
tried once more on a fresh connection, so a restarted master costs no canary. A failure
that took the whole receive timeout (a hung master) is not retried: a hung master still
costs one timeout per canary, as it did with a connection per canary. Refusals (our own
errors, e.g. a fence's LeaseLost) are never retried. A connection older than `MAX_AGE_S`
is replaced, so a rotated password or CA file is picked up within that time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import ldap3
from ldap3.core.exceptions import LDAPCommunicationError

from orchestrator.checks import ldap as ldap_checks
from orchestrator.config.model import LdapMaster, Topology

log = logging.getLogger("sitectl.controller")

T = TypeVar("T")
Connect = Callable[[Topology, LdapMaster, float], ldap3.Connection]
MAX_AGE_S = 600.0


@dataclass
class _Kept:
    conn: ldap3.Connection
    opened: float


class LdapLinks:
    def __init__(
        self,
        connect: Connect = ldap_checks.connect,
        clock: Callable[[], float] = time.monotonic,
        max_age: float = MAX_AGE_S,
    ) -> None:
        self._connect, self._clock, self._max_age = connect, clock, max_age
        self._kept: dict[tuple[str, float], _Kept] = {}

    def run(
        self,
        topo: Topology,
        master: LdapMaster,
        timeout: float,
        work: Callable[[ldap3.Connection], T],
    ) -> T:
        """`work(conn)` on the master's kept connection, opened first if there is none.
        ldap_checks.Unusable (with the reason) when the master cannot be used: no
        connection could be opened, or it broke under `work`; anything else `work`
        raises is raised as it is, never retried."""
        key = (master.uri, timeout)
        kept = self._kept.pop(key, None)
        if kept is not None and (kept.conn.closed or self._clock() - kept.opened > self._max_age):
            ldap_checks.close(kept.conn)
            kept = None
        if kept is not None:
            started = self._clock()
            try:
                return self._use(key, kept, work)
            except (LDAPCommunicationError, OSError) as exc:
                if self._clock() - started >= timeout:  # hung: a retry would wait again
                    raise ldap_checks.Unusable(ldap_checks.describe_error(exc, timeout)) from None
                log.debug(
                    "the kept connection to %s broke (%s): opening a new one",
                    master.uri,
                    type(exc).__name__,
                )
        fresh = _Kept(self._connect(topo, master, timeout), self._clock())
        try:
            return self._use(key, fresh, work)
        except (LDAPCommunicationError, OSError) as exc:
            raise ldap_checks.Unusable(ldap_checks.describe_error(exc, timeout)) from None

    def _use(self, key: tuple[str, float], kept: _Kept, work: Callable[[ldap3.Connection], T]) -> T:
        try:
            answer = work(kept.conn)
        except BaseException:
            ldap_checks.close(kept.conn)  # whatever broke may have broken the connection
            raise
        if kept.conn.closed:
            ldap_checks.close(kept.conn)
        else:
            self._kept[key] = kept
        return answer

    def close(self) -> None:
        for kept in self._kept.values():
            ldap_checks.close(kept.conn)
        self._kept.clear()
