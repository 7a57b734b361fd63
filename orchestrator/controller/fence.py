"""The leader's fence on its own writes, the canaries (issue 8, R4).

A leader frozen past its session timeout (SIGSTOP, a stalled VM) wakes up still
believing it leads, and its canary thread may write once more before its leader loop
notices. Its writes carry its epoch (`Leadership.epoch`), and the servers refuse
them once a newer leader has stamped its own epoch where they land:

- LDAP: each master's own canary entry (`cn=sitectl-canary-sid<N>`, written only on
  master N), through the assertion control (adapters/ldap_fence.py);
- the object store: each endpoint's own canary object (`_sitectl/canary/<site>`, written
  only at that site's endpoint), through conditional puts (adapters/s3_stamp.py).

A new leader stamps every one of them, not only the active site's: the old leader may
believe another site is active. What it could not reach it tries again every cycle.
The residual gap: a master or endpoint that the new leader cannot reach while the old
one can still takes the old one's canary until the new leader reaches it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from orchestrator.adapters import ldap_fence, s3_stamp
from orchestrator.adapters.s3 import s3_client
from orchestrator.checks import ldap as ldap_checks
from orchestrator.checks import object_store
from orchestrator.config.model import LdapMaster, Topology
from orchestrator.errors import LeaseLost, SitectlError, Unavailable

log = logging.getLogger("sitectl.controller")

LDAP_CLASS = "organizationalRole"


def ldap_canary_dn(topo: Topology, master: LdapMaster) -> str:
    assert topo.ldap is not None
    return topo.ldap.child_dn(f"cn=sitectl-canary-sid{master.server_id}")


def s3_canary_key(site: str) -> str:
    return object_store.CANARY_PREFIX + site


class LeaderFence:
    """One leadership term: its epoch, where it has stamped it, and whether a newer
    leader refused it (then it writes nothing more, ever: a refusal is an answer, not
    a transient failure)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.deposed = ""  # the refusal, once one came
        self._stamped: set[str] = set()
        self._lock = threading.Lock()  # refusals may come from several stamping threads

    def refused(self, sentence: str) -> None:
        with self._lock:
            first, self.deposed = not self.deposed, self.deposed or sentence
        if first:
            log.warning("%s: this controller writes no canary again until it leads anew", sentence)

    def stamp_everywhere(self, topo: Topology, timeout: float) -> list[str]:
        """Stamp our epoch wherever it is not yet; one sentence per place that could
        not be reached (tried again on the next call). All at once, on a thread each:
        a dead site must cost one timeout, not one per master and bucket."""
        pending = [(p, s) for p, s in self._places(topo, timeout) if p not in self._stamped]
        if self.deposed or not pending:
            return []
        with ThreadPoolExecutor(max_workers=len(pending)) as pool:
            outcomes = list(pool.map(lambda item: self._stamp(*item), pending))
        return [problem for problem in outcomes if problem]

    def _stamp(self, place: str, stamp: Callable[[], int | None]) -> str:
        try:
            before = stamp()
        except LeaseLost as exc:
            self.refused(f"{place} refused: {exc}")
            return ""
        except SitectlError as exc:
            return f"{place}: {exc}"
        except Exception as exc:  # ldap3's error tree is wide; never raise from here
            return f"{place}: {type(exc).__name__}"
        self._stamped.add(place)
        if before != self.epoch:
            log.info(
                "%s now holds epoch %d (was %s)",
                place,
                self.epoch,
                "none" if before is None else before,
            )
        return ""

    def _places(self, topo: Topology, timeout: float) -> list[tuple[str, Callable[[], int | None]]]:
        places: list[tuple[str, Callable[[], int | None]]] = []
        if topo.ldap is not None:
            for master in topo.ldap.masters:
                places.append(
                    (
                        f"LDAP fence on {master.uri}",
                        lambda m=master: self._stamp_ldap(topo, m, timeout),
                    )
                )
        store = topo.object_store
        if store is not None:
            for endpoint in store.endpoints:
                for bucket in (b for b in store.buckets if b.replicated):
                    key = s3_canary_key(endpoint.site)
                    places.append(
                        (
                            f"object store fence on {bucket.name}/{key}@{endpoint.site}",
                            lambda e=endpoint, b=bucket.name, k=key: s3_stamp.raise_stamp(
                                s3_client(topo, e, timeout),
                                b,
                                k,
                                self.epoch,
                                keep=(object_store.WRITTEN_AT,),
                            ),
                        )
                    )
        return places

    def _stamp_ldap(self, topo: Topology, master: LdapMaster, timeout: float) -> int | None:
        try:
            conn = ldap_checks.connect(topo, master, timeout)
        except ldap_checks.Unusable as exc:
            raise Unavailable(str(exc)) from None
        try:
            return ldap_fence.raise_epoch(
                conn,
                ldap_canary_dn(topo, master),
                self.epoch,
                LDAP_CLASS,
                {"description": "sitectl canary"},
            )
        finally:
            ldap_checks.close(conn)
