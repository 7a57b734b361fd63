"""What an LDAP master holds that changed since a moment: DN → entryCSN (ldap3, through
the connection the checks use). Every failure becomes Unavailable."""

from __future__ import annotations

import time
from collections.abc import Iterable

import ldap3

from orchestrator.checks.ldap import Unusable, close, connect, describe_error
from orchestrator.config.model import LdapMaster, Topology
from orchestrator.errors import Unavailable

PAGE_SIZE = 500


def csn_at(when: float) -> str:
    """The smallest CSN written at or after `when` (UNIX seconds; the microseconds
    rounded down, so a change in the same microsecond is included)."""
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(when))
    micro = int((when % 1) * 1e6)
    return f"{stamp}.{micro:06d}Z#000000#000#000000"


def changed_since(
    topo: Topology, master: LdapMaster, since: float, timeout: float
) -> dict[str, str]:
    """DN → entryCSN of every entry under the suffix `master` holds with an entryCSN at
    or after `since`."""
    assert topo.ldap is not None
    return _search(topo, master, f"(entryCSN>={csn_at(since)})", timeout)


def csns_of(
    topo: Topology, master: LdapMaster, dns: Iterable[str], timeout: float
) -> dict[str, str]:
    """DN → entryCSN for those of `dns` that `master` holds."""
    found: dict[str, str] = {}
    conn = _connect(topo, master, timeout)
    try:
        for dn in dns:
            try:
                conn.search(dn, "(objectClass=*)", search_scope=ldap3.BASE, attributes=["entryCSN"])
            except Exception as exc:  # ldap3 raises a wide tree; all mean "not read"
                raise Unavailable(f"LDAP {master.uri}: {describe_error(exc, timeout)}") from None
            for entry in conn.entries:
                values = entry.entry_attributes_as_dict.get("entryCSN") or []
                if values:
                    found[dn] = str(values[0])
    finally:
        close(conn)
    return found


def _connect(topo: Topology, master: LdapMaster, timeout: float) -> ldap3.Connection:
    try:
        return connect(topo, master, timeout)
    except Unusable as exc:
        raise Unavailable(f"LDAP {master.uri}: {exc}") from None


def _search(topo: Topology, master: LdapMaster, query: str, timeout: float) -> dict[str, str]:
    assert topo.ldap is not None
    conn = _connect(topo, master, timeout)
    try:
        entries = conn.extend.standard.paged_search(
            topo.ldap.suffix,
            query,
            search_scope=ldap3.SUBTREE,
            attributes=["entryCSN"],
            paged_size=PAGE_SIZE,
            generator=False,
        )
    except Exception as exc:  # ldap3 raises a wide tree; all mean "not read"
        raise Unavailable(f"LDAP {master.uri}: {describe_error(exc, timeout)}") from None
    finally:
        close(conn)
    found = {}
    for entry in entries or []:
        if entry.get("type") != "searchResEntry":
            continue
        values = entry.get("attributes", {}).get("entryCSN") or []
        if values:
            found[str(entry["dn"])] = str(values[0] if isinstance(values, list) else values)
    return found
