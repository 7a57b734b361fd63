"""Canary writes on the active site, so the readiness gate can bound the loss after it dies.

When the active site goes silent, the gate can only say "everything after the newest
change the standby holds may be lost" (checks/readiness.py). On a quiet system that
change may be hours old and the gate refuses every automatic failover. The leader
therefore writes small canaries at a steady pace: an LDAP entry per master of the active
site (each master must write, since the gate bounds each server id separately) and the
object store's canary object. The newest canary the standby holds is then never older
than one canary interval plus the replication delay.

Every canary carries the leader's epoch and the servers check it (controller/fence.py):
a leader deposed while frozen has its late canaries refused, and then writes no more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import ldap3

from orchestrator.adapters import ldap_fence
from orchestrator.checks import ldap as ldap_checks
from orchestrator.checks import object_store
from orchestrator.checks.result import Status
from orchestrator.checks.sweep import CUTOFF_FACTOR, run_bounded
from orchestrator.config.model import LdapMaster, Topology
from orchestrator.controller.fence import LDAP_CLASS, LeaderFence, ldap_canary_dn
from orchestrator.errors import LeaseLost, SitectlError

log = logging.getLogger("sitectl.controller")


def canary_interval(topo: Topology) -> float:
    """A tenth of the tightest RPO limit, but no faster than the probe interval. The
    bound the gate computes after a site loss is the canary's age, which also grows
    through detection (consecutive failures) and the engine's own gate: a fifth was
    seen to leave a 10 s LDAP limit exceeded by 2 s on the lab."""
    limits = topo.policy.rpo_limits
    tightest = min(limits.volume, limits.ldap, limits.object_store)
    return max(topo.policy.probe_interval, tightest / 10)


def write_canaries(topo: Topology, active_site: str, timeout: float, fence: LeaderFence,
                   clock: Callable[[], float] = time.time) -> list[str]:
    """Write every canary of `active_site` under the leader's epoch (`fence`); return one
    sentence per failure (bounded). Once a newer epoch refused one, write nothing more."""
    if fence.deposed:
        return [fence.deposed]
    active = topo.model_copy(update={"active_site": active_site})
    problems = []
    if topo.ldap is not None:
        for master in (m for m in topo.ldap.masters if m.site == active_site):
            try:
                problem = _ldap_canary(active, master, timeout, clock(), fence.epoch)
            except LeaseLost as exc:
                fence.refused(f"LDAP canary on {master.uri} refused: {exc}")
                return [fence.deposed]
            if problem:
                problems.append(problem)
    if topo.object_store is not None:
        # Only the canaries (the readers' answers were never used here), under our epoch.
        planned = [c for c in object_store.checks(active, timeout, canary=True, epoch=fence.epoch)
                   if c.target.startswith("canary ")]
        for result in run_bounded(planned, timeout, CUTOFF_FACTOR * timeout):
            if object_store.FENCED_BY in result.figures:
                fence.refused(f"object store {result.reason}")
                return [fence.deposed]
            if result.status is Status.DOWN:
                problems.append(result.describe())
    return problems


def _ldap_canary(topo: Topology, master: LdapMaster, timeout: float, now: float,
                 epoch: int) -> str:
    """One canary, asserting our epoch (LeaseLost once a newer leader's holds the entry)."""
    assert topo.ldap is not None
    dn = ldap_canary_dn(topo, master)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    try:
        conn = ldap_checks.connect(topo, master, timeout)
    except ldap_checks.Unusable as exc:
        return f"LDAP canary on {master.uri}: {exc}"
    try:
        text = f"sitectl canary {stamp}"
        change = {"description": [(ldap3.MODIFY_REPLACE, [text])]}
        # The first canary (or the first of a new leader) creates or raises the entry.
        ldap_fence.fenced_modify(conn, dn, change, epoch, LDAP_CLASS, {"description": text})
        return ""
    except LeaseLost:
        raise  # refused by a newer leader's epoch: the caller stops, never retries
    except SitectlError as exc:
        return f"LDAP canary on {master.uri}: {exc}"
    except Exception as exc:  # ldap3's error tree is wide; a canary must never raise
        return f"LDAP canary on {master.uri}: {type(exc).__name__}"
    finally:
        try:
            conn.unbind()
        except Exception as exc:  # closing a broken connection may fail too
            log.debug("closing the canary connection: %s", exc)
