"""The LDAP canary: change one entry on a master of the active site, time until every
other master shows it. It writes, so it runs only when asked (`canary=True`).

The entry is `cn=sitectl-canary,<suffix>` (objectClass applicationProcess, core schema),
created on first use; its `description` carries a fresh token each run. Run regularly
(the controller's job) it is also a heartbeat: the newest change of the active site's
writer that a standby holds is then never older than the interval, which keeps the
readiness upper bound tight after the active site is lost.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable

import ldap3

from orchestrator.checks import ldap
from orchestrator.checks.result import Check, CheckResult, Status
from orchestrator.config.model import LdapMaster, Topology

TARGET = ldap.CANARY_TARGET
FIGURE = "sid_{}_canary_seconds"
_POLL_S = 0.05


def checks(topo: Topology, timeout: float) -> list[Check]:
    del timeout
    if topo.ldap is None:
        return []
    # Placed at the active site, where it writes: in a failover its failure is expected
    # and must not block (see blocking.py); a cluster-wide result would.
    return [Check(ldap.SYSTEM, topo.active_site, TARGET, lambda t: run_canary(topo, t))]


def entry_dn(topo: Topology) -> str:
    assert topo.ldap is not None
    return topo.ldap.child_dn("cn=sitectl-canary")


def run_canary(topo: Topology, timeout: float) -> CheckResult:
    assert topo.ldap is not None
    writers = [m for m in topo.ldap.masters if m.site == topo.active_site]
    token = f"sitectl-canary {uuid.uuid4()} {time.time():.3f}"
    written_by, problems = None, []
    for writer in writers:
        try:
            _write(topo, writer, token, timeout)
            written_by = writer
            break
        except ldap.Unusable as exc:
            problems.append(f"{writer.uri}: {exc}")
    if written_by is None:
        return CheckResult(
            ldap.SYSTEM,
            topo.active_site,
            TARGET,
            Status.DOWN,
            "no master of the active site took the canary: " + "; ".join(problems),
            {},
        )
    written = time.monotonic()
    others = [m for m in topo.ldap.masters if m != written_by]
    seen = _wait_for(topo, others, token, written + timeout, lambda: time.monotonic() - written)
    figures = {FIGURE.format(m.server_id): s for m, s in seen.items()}
    late = [m.uri for m in others if m not in seen]
    if late:
        return CheckResult(
            ldap.SYSTEM,
            topo.active_site,
            TARGET,
            Status.DEGRADED,
            f"{', '.join(late)} did not show the canary written at "
            f"{written_by.uri} within {timeout:g} s",
            figures,
        )
    return CheckResult(ldap.SYSTEM, topo.active_site, TARGET, Status.OK, "", figures)


def _write(topo: Topology, master: LdapMaster, token: str, timeout: float) -> None:
    conn = ldap.connect(topo, master, timeout)
    try:
        dn = entry_dn(topo)
        if conn.modify(dn, {"description": [(ldap3.MODIFY_REPLACE, [token])]}):
            return
        if conn.result.get("description") == "noSuchObject" and conn.add(
            dn, ["applicationProcess"], {"cn": "sitectl-canary", "description": token}
        ):
            return
        raise ldap.Unusable(
            f"the canary write was refused: {conn.result.get('description')} "
            f"({conn.result.get('message', '')})"
        )
    finally:
        ldap.close(conn)


def _wait_for(
    topo: Topology,
    masters: list[LdapMaster],
    token: str,
    deadline: float,
    elapsed: Callable[[], float],
) -> dict[LdapMaster, float]:
    """Seconds since the write until each master showed `token`, polled on one thread
    per master: a hung master must not delay the figures of the others."""
    seen: dict[LdapMaster, float] = {}
    lock = threading.Lock()

    def poll(master: LdapMaster) -> None:
        while time.monotonic() < deadline:
            if _shows(topo, master, token, deadline - time.monotonic()):
                with lock:
                    seen[master] = round(elapsed(), 3)
                return
            time.sleep(_POLL_S)

    threads = [threading.Thread(target=poll, args=(m,), daemon=True) for m in masters]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 1.0)
    with lock:
        return dict(seen)


def _shows(topo: Topology, master: LdapMaster, token: str, timeout: float) -> bool:
    try:
        conn = ldap.connect(topo, master, timeout)
    except ldap.Unusable:
        return False  # hung or down: it shows nothing yet; ask again until the deadline
    try:
        found = conn.search(
            entry_dn(topo), "(objectClass=*)", search_scope=ldap3.BASE, attributes=["description"]
        )
        values = (
            conn.entries[0].entry_attributes_as_dict.get("description", [])
            if (found and conn.entries)
            else []
        )
        return token in values
    except Exception:  # a read that fails is a read that does not show the token
        return False
    finally:
        ldap.close(conn)
