"""Canary writes on the active site, so the readiness gate can bound the loss after it dies.

When the active site goes silent, the gate can only say "everything after the newest
change the standby holds may be lost" (checks/readiness.py). On a quiet system that
change may be hours old and the gate refuses every automatic failover. The leader
therefore writes small canaries at a steady pace: an LDAP entry per master of the active
site (each master must write, since the gate bounds each server id separately) and the
object store's canary object. The newest canary the standby holds is then never older
than one canary interval plus the replication delay.

Each kind at a tenth of its own RPO limit (`intervals`): the gate compares each kind's
bound with that kind's limit only (readiness.verdict), so the object store's canary,
judged against its own, usually looser, limit, keeps the same margin at its own pace.
Written at the LDAP pace instead (every second on the lab, whose object-store limit is
60 s), its puts were most of what an idle leader spent. The volumes have no canary:
their loss is read from the mirrors' own lag. The leader only writes here: how fast a
canary replicates is the health check's to measure (`sitectl health`), not the
heartbeat's, which would otherwise poll the store for it every time.

Every canary carries the leader's epoch and the servers check it (controller/fence.py):
a leader deposed while frozen has its late canaries refused, and then writes no more.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

import ldap3

from orchestrator.adapters import ldap_fence, s3_stamp
from orchestrator.adapters.s3 import s3_client
from orchestrator.checks import ldap as ldap_checks
from orchestrator.checks import object_store
from orchestrator.config.model import LdapMaster, Topology
from orchestrator.controller.fence import LDAP_CLASS, LeaderFence, ldap_canary_dn
from orchestrator.controller.ldap_links import LdapLinks
from orchestrator.errors import LeaseLost, SitectlError

log = logging.getLogger("sitectl.controller")

# Writes one kind's canaries: (topology, active site, timeout, fence, links) → problems.
Writer = Callable[[Topology, str, float, LeaderFence, LdapLinks], list[str]]


def intervals(topo: Topology) -> dict[str, float]:
    """Seconds between canaries of each kind the topology has: a tenth of that kind's
    RPO limit, but no faster than the probe interval. The bound the gate computes after
    a site loss is the canary's age, which also grows through detection (consecutive
    failures) and the engine's own gate: a fifth was seen to leave a 10 s LDAP limit
    exceeded by 2 s on the lab."""
    limits, floor = topo.policy.rpo_limits, topo.policy.probe_interval
    every = {}
    if topo.ldap is not None:
        every["ldap"] = max(floor, limits.ldap / 10)
    if topo.object_store is not None:
        every["object_store"] = max(floor, limits.object_store / 10)
    return every


def canary_interval(topo: Topology) -> float:
    """How often the canary loop wakes: the pace of its most frequent kind."""
    return min(intervals(topo).values(), default=topo.policy.probe_interval)


class Canaries:
    """The leader's canary writer: which kinds are due, and the LDAP connections kept
    between canaries. Used by one thread (the canary loop); `close` when it ends."""

    def __init__(
        self,
        topo: Topology,
        clock: Callable[[], float] = time.monotonic,
        writers: Mapping[str, Writer] | None = None,
    ) -> None:
        self.tick = canary_interval(topo)
        self._every = intervals(topo)
        self._clock = clock
        self._writers = writers or _WRITERS
        self._written: dict[str, float] = {}
        self._links = LdapLinks()

    def write(
        self, topo: Topology, active_site: str, timeout: float, fence: LeaderFence
    ) -> list[str]:
        """Write the canaries that are due, as write_canaries does; a kind that failed
        is due again at the next tick."""
        now = self._clock()
        problems: list[str] = []
        for kind, every in self._every.items():
            # Half a tick of slack: waking a little early must not cost a whole tick.
            if fence.deposed or now - self._written.get(kind, -math.inf) < every - self.tick / 2:
                continue
            found = self._writers[kind](topo, active_site, timeout, fence, self._links)
            if not found:
                self._written[kind] = now
            problems += found
        return [fence.deposed] if fence.deposed else problems

    def close(self) -> None:
        self._links.close()


def write_canaries(
    topo: Topology,
    active_site: str,
    timeout: float,
    fence: LeaderFence,
    links: LdapLinks | None = None,
) -> list[str]:
    """Write every canary of `active_site` under the leader's epoch (`fence`); return one
    sentence per failure (bounded). Once a newer epoch refused one, write nothing more.
    `links`: LDAP connections kept between calls; without, each master gets one for
    this call only."""
    own = links or LdapLinks()
    try:
        problems: list[str] = []
        for writer in _WRITERS.values():
            if fence.deposed:
                break
            problems += writer(topo, active_site, timeout, fence, own)
        return [fence.deposed] if fence.deposed else problems
    finally:
        if links is None:
            own.close()


def _ldap_canaries(
    topo: Topology, active_site: str, timeout: float, fence: LeaderFence, links: LdapLinks
) -> list[str]:
    if topo.ldap is None:
        return []
    active = topo.model_copy(update={"active_site": active_site})
    problems = []
    for master in (m for m in topo.ldap.masters if m.site == active_site):
        try:
            problem = _ldap_canary(active, master, timeout, time.time(), fence.epoch, links)
        except LeaseLost as exc:
            fence.refused(f"LDAP canary on {master.uri} refused: {exc}")
            return []
        if problem:
            problems.append(problem)
    return problems


def _object_canaries(
    topo: Topology, active_site: str, timeout: float, fence: LeaderFence, links: LdapLinks
) -> list[str]:
    del links
    store = topo.object_store
    source = (
        None if store is None else next((e for e in store.endpoints if e.site == active_site), None)
    )
    if store is None or source is None:
        return []  # nothing to write: the active site keeps no object store
    problems = []
    for bucket in (b for b in store.buckets if b.replicated):
        try:
            object_store.put_canary(
                s3_client(topo, source, timeout), bucket.name, active_site, time.time(), fence.epoch
            )
        except s3_stamp.Stale as exc:
            fence.refused(f"object store canary at {source.url} refused: {exc}")
            return []
        except Exception as exc:  # boto's error tree is wide; describe_error maps it all
            _status, reason = object_store.describe_error(exc, timeout)
            problems.append(f"object store canary {bucket.name} at {source.url}: {reason}")
    return problems


_WRITERS: dict[str, Writer] = {"ldap": _ldap_canaries, "object_store": _object_canaries}


def _ldap_canary(
    topo: Topology, master: LdapMaster, timeout: float, now: float, epoch: int, links: LdapLinks
) -> str:
    """One canary, asserting our epoch (LeaseLost once a newer leader's holds the entry)."""
    assert topo.ldap is not None
    dn = ldap_canary_dn(topo, master)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    text = f"sitectl canary {stamp}"
    change = {"description": [(ldap3.MODIFY_REPLACE, [text])]}

    def write(conn: ldap3.Connection) -> None:
        # The first canary (or the first of a new leader) creates or raises the entry.
        ldap_fence.fenced_modify(conn, dn, change, epoch, LDAP_CLASS, {"description": text})

    try:
        links.run(topo, master, timeout, write)
        return ""
    except ldap_checks.Unusable as exc:
        return f"LDAP canary on {master.uri}: {exc}"
    except LeaseLost:
        raise  # refused by a newer leader's epoch: the caller stops, never retries
    except SitectlError as exc:
        return f"LDAP canary on {master.uri}: {exc}"
    except Exception as exc:  # ldap3's error tree is wide; a canary must never raise
        return f"LDAP canary on {master.uri}: {type(exc).__name__}"
