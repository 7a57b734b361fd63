"""Which servers take signed updates for a zone right now.

The primary is observed, never stored: after a failover promoted another site's server,
that one accepts and the old one (demoted, or dead) does not. Two that both accept are
two primaries, which a reprotect resolves.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from orchestrator.adapters.dns.outcomes import UpdateRefused
from orchestrator.adapters.dns.retry import NO_RETRY
from orchestrator.adapters.dns.rfc2136 import Rfc2136Provider
from orchestrator.config.model import DnsServer, DnsZone
from orchestrator.errors import SitectlError, Unavailable


def candidates(zone: DnsZone) -> list[DnsServer]:
    """Servers that may be the zone's primary: the configured ones, then promotion targets."""
    found = list(zone.update_servers)
    for promotion in zone.promote.values():
        if all(str(promotion.server) != str(s) for s in found):
            found.append(promotion.server)
    return found


class Acceptance(NamedTuple):
    accepted: list[DnsServer]  # take signed updates: the primary (two: a stale one too)
    refusals: list[str]  # one reason per server that does not
    silent: list[DnsServer]  # gave no answer at all: a primary there may be lost
    declined: list[DnsServer]  # answered REFUSED, as a secondary does


def _refusal(
    zone: DnsZone, server: DnsServer, base_dir: Path, timeout: float
) -> SitectlError | None:
    """None if `server` accepts a signed no-op update for the zone, else why not."""
    single = zone.model_copy(update={"update_servers": (server,)})
    try:
        Rfc2136Provider.from_zone(single, base_dir, retry=NO_RETRY, timeout=timeout).check_key()
    except SitectlError as exc:
        return exc
    return None


def accepting(
    zone: DnsZone, servers: Sequence[DnsServer], base_dir: Path, timeout: float = 3.0
) -> Acceptance:
    """Which of `servers` take signed updates, and why the others do not.

    All are asked at once: a dead site's server costs one timeout, not one each."""
    if not servers:
        return Acceptance([], [], [], [])
    with ThreadPoolExecutor(max_workers=len(servers)) as pool:
        answers = list(pool.map(lambda s: _refusal(zone, s, base_dir, timeout), servers))
    pairs = list(zip(servers, answers, strict=True))
    return Acceptance(
        accepted=[s for s, why in pairs if why is None],
        refusals=[f"{s}: {why}" for s, why in pairs if why is not None],
        silent=[s for s, why in pairs if isinstance(why, Unavailable)],
        declined=[s for s, why in pairs if isinstance(why, UpdateRefused)],
    )


def first_accepting(
    zone: DnsZone, servers: Sequence[DnsServer], base_dir: Path, timeout: float = 3.0
) -> tuple[DnsServer | None, list[str]]:
    """(the first of `servers`, in their order, that accepts a signed no-op update; the
    reasons of those before it that did not).

    All are asked at once, and the answer comes as soon as it is known: the servers after
    the one found are not waited for, so a dead site's server listed after the primary
    (the old site's, in a failover) costs nothing."""
    if not servers:
        return None, []
    pool = ThreadPoolExecutor(max_workers=len(servers))
    try:
        futures = [pool.submit(_refusal, zone, s, base_dir, timeout) for s in servers]
        refusals: list[str] = []
        for server, future in zip(servers, futures, strict=True):
            why = future.result()  # in order; the later ones keep running meanwhile
            if why is None:
                return server, refusals
            refusals.append(f"{server}: {why}")
        return None, refusals
    finally:
        pool.shutdown(wait=False)  # a check still waiting on a dead server ends on its own
