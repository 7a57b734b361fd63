"""Canary writes on the active site, so the readiness gate can bound the loss after it dies.

When the active site goes silent, the gate can only say "everything after the newest
change the standby holds may be lost" (checks/readiness.py). On a quiet system that
change may be hours old and the gate refuses every automatic failover. The leader
therefore writes small canaries at a steady pace: an LDAP entry per master of the active
site (each master must write, since the gate bounds each server id separately) and the
object store's canary object. The newest canary the standby holds is then never older
than one canary interval plus the replication delay.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import ldap3

from orchestrator.checks import ldap as ldap_checks
from orchestrator.checks import run_checks
from orchestrator.checks.result import Status
from orchestrator.config.model import LdapMaster, Topology

log = logging.getLogger("sitectl.controller")


def canary_interval(topo: Topology) -> float:
    """A tenth of the tightest RPO limit, but no faster than the probe interval. The
    bound the gate computes after a site loss is the canary's age, which also grows
    through detection (consecutive failures) and the engine's own gate: a fifth was
    seen to leave a 10 s LDAP limit exceeded by 2 s on the lab."""
    limits = topo.policy.rpo_limits
    tightest = min(limits.volume, limits.ldap, limits.object_store)
    return max(topo.policy.probe_interval, tightest / 10)


def write_canaries(topo: Topology, active_site: str, timeout: float,
                   clock: Callable[[], float] = time.time) -> list[str]:
    """Write every canary of `active_site`; return one sentence per failure (bounded)."""
    active = topo.model_copy(update={"active_site": active_site})
    problems = []
    if topo.ldap is not None:
        for master in (m for m in topo.ldap.masters if m.site == active_site):
            problem = _ldap_canary(active, master, timeout, clock())
            if problem:
                problems.append(problem)
    if topo.object_store is not None:
        sweep = run_checks(active, ["object-store"], canary=True, timeout=timeout)
        problems += [r.describe() for r in sweep.results
                     if r.target.startswith("canary ") and r.status is Status.DOWN]
    return problems


def _ldap_canary(topo: Topology, master: LdapMaster, timeout: float, now: float) -> str:
    assert topo.ldap is not None
    dn = f"cn=sitectl-canary-sid{master.server_id},{topo.ldap.suffix}"
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    try:
        conn = ldap_checks.connect(topo, master, timeout)
    except ldap_checks.Unusable as exc:
        return f"LDAP canary on {master.uri}: {exc}"
    try:
        change = {"description": [(ldap3.MODIFY_REPLACE, [f"sitectl canary {stamp}"])]}
        if conn.modify(dn, change):
            return ""
        missing = conn.result.get("result") == 32  # noSuchObject: the first canary creates it
        if missing and conn.add(dn, ["organizationalRole"],
                                {"description": f"sitectl canary {stamp}"}):
            return ""
        return f"LDAP canary on {master.uri}: {conn.result.get('description')}"
    except Exception as exc:  # ldap3's error tree is wide; a canary must never raise
        return f"LDAP canary on {master.uri}: {type(exc).__name__}"
    finally:
        try:
            conn.unbind()
        except Exception as exc:  # closing a broken connection may fail too
            log.debug("closing the canary connection: %s", exc)
