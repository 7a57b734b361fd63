"""Which servers take signed updates for a zone right now.

The primary is observed, never stored: after a failover promoted another site's server,
that one accepts and the old one (demoted, or dead) does not. Two that both accept are
two primaries, which a reprotect resolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from orchestrator.adapters.dns.retry import NO_RETRY
from orchestrator.adapters.dns.rfc2136 import Rfc2136Provider
from orchestrator.config.model import DnsServer, DnsZone
from orchestrator.errors import SitectlError


def candidates(zone: DnsZone) -> list[DnsServer]:
    """Servers that may be the zone's primary: the configured ones, then promotion targets."""
    found = list(zone.update_servers)
    for promotion in zone.promote.values():
        if all(str(promotion.server) != str(s) for s in found):
            found.append(promotion.server)
    return found


def accepting(
    zone: DnsZone, servers: Sequence[DnsServer], base_dir: Path, timeout: float = 3.0
) -> tuple[list[DnsServer], list[str]]:
    """(the servers that accept a signed no-op update, one reason per server that did not)."""
    accepted: list[DnsServer] = []
    refusals: list[str] = []
    for server in servers:
        single = zone.model_copy(update={"update_servers": (server,)})
        try:
            Rfc2136Provider.from_zone(single, base_dir, retry=NO_RETRY, timeout=timeout).check_key()
        except SitectlError as exc:
            refusals.append(f"{server}: {exc}")
            continue
        accepted.append(server)
    return accepted, refusals
