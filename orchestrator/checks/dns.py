"""DNS: every verify server answers the active site's records and agrees on the SOA
serial; every rfc2136 zone's TSIG key is accepted by its update servers.

A server that is silent or does not serve the zone is down; one that answers the wrong
thing (NXDOMAIN, an old address, a lagging serial) is degraded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from orchestrator.checks.places import site_of
from orchestrator.checks.result import SPLIT_BRAIN, Check, CheckResult, Status, one_line
from orchestrator.config.model import DnsServer, DnsZone, Topology
from orchestrator.errors import SitectlError

if TYPE_CHECKING:
    from orchestrator.adapters.dns import Mismatch, SoaSerial

# The DNS adapter (dnspython, and boto3 for Route 53) is imported by the checks that use
# it, not here: every sweep runs `summarize`, and a controller that only probes the
# application never needs the adapter (a few MB of its resident memory).

SYSTEM = "dns"
UPDATE_PREFIX = "update servers of "  # targets whose loss stops any repointing of DNS
SERIAL = "soa_serial"


def checks(topo: Topology, timeout: float) -> list[Check]:
    from orchestrator.adapters.dns.primary import candidates

    del timeout
    out: list[Check] = []
    for zone in topo.dns.zones:
        for server in zone.verify_servers:
            out.append(
                Check(
                    SYSTEM,
                    site_of(topo, server.address),
                    server_target(zone, server),
                    _server_reader(topo, zone, server),
                )
            )
        if zone.provider == "rfc2136":
            first = candidates(zone)[0].address if candidates(zone) else ""
            out.append(
                Check(
                    SYSTEM,
                    site_of(topo, first),
                    f"{UPDATE_PREFIX}{zone.name}",
                    _key_reader(topo, zone),
                )
            )
    return out


def server_target(zone: DnsZone, server: DnsServer) -> str:
    return f"zone {zone.name} at {server}"


def _server_reader(
    topo: Topology, zone: DnsZone, server: DnsServer
) -> Callable[[float], CheckResult]:
    from orchestrator.adapters.dns import changes_for_site, soa_serials, verify

    def run(timeout: float) -> CheckResult:
        where = (SYSTEM, site_of(topo, server.address), server_target(zone, server))
        try:
            expected = changes_for_site(zone, topo.active_site)
        except SitectlError as exc:
            return CheckResult(*where, Status.DOWN, one_line(exc), {})
        (soa,) = soa_serials(zone.name, [server], timeout)
        if soa.error is not None:
            return CheckResult(*where, *judge_answers(zone.name, soa, ()))
        # One round (timeout 0): a health check reports what is, it does not wait for
        # the answer to become right.
        found = verify(zone.name, expected, [server], timeout=0, query_timeout=timeout)
        return CheckResult(*where, *judge_answers(zone.name, soa, found.mismatches))

    return run


def judge_answers(
    zone: str, soa: SoaSerial, mismatches: Sequence[Mismatch]
) -> tuple[Status, str, dict[str, float]]:
    """Status, reason and figures from one server's SOA and record answers (pure).

    No SOA (silence, REFUSED, NXDOMAIN, not authoritative) means the server does not
    serve the zone: down. Serving it with wrong records (NXDOMAIN for a record, an old
    address) is degraded: resolvers still get answers, just not the right ones.
    """
    if soa.error is not None or soa.serial is None:
        return Status.DOWN, f"does not serve {zone}: {soa.error or 'no serial'}", {}
    figures = {SERIAL: float(soa.serial)}
    if mismatches:
        wrong = "; ".join(m.describe() for m in mismatches)
        return Status.DEGRADED, f"answers for the active site differ: {wrong}", figures
    return Status.OK, "", figures


def _key_reader(topo: Topology, zone: DnsZone) -> Callable[[float], CheckResult]:
    """The zone takes signed updates somewhere: exactly one candidate is its primary.

    After a failover promoted another site's server, that one is the primary; the one
    configured first may rightly refuse (it was demoted). Two that both accept are two
    primaries: a split brain (down), which a reprotect resolves.
    """
    from orchestrator.adapters.dns.primary import accepting, candidates

    def run(timeout: float) -> CheckResult:
        accepted, refusals, silent, _ = accepting(zone, candidates(zone), topo.base_dir, timeout)
        refusals = [one_line(r, 200) for r in refusals]
        # With none taking updates, the loss is where a server said nothing (its site
        # lost the primary: a failover away from it promotes another), not where a
        # secondary answered that it is not the primary.
        first = (accepted or silent or [*zone.update_servers, None])[0]
        site = site_of(topo, first.address) if first is not None else None
        where = (SYSTEM, site, f"{UPDATE_PREFIX}{zone.name}")
        if not accepted:
            return CheckResult(*where, Status.DOWN, "; ".join(refusals), {})
        if len(accepted) > 1:
            both = " and ".join(str(s) for s in accepted)
            return CheckResult(
                *where,
                Status.DOWN,
                f"split brain: two primaries take updates: {both} (`sitectl reprotect` "
                "demotes the stale one)",
                {SPLIT_BRAIN: 1.0},
            )
        return CheckResult(*where, Status.OK, "", {})

    return run


def summarize(results: Sequence[CheckResult]) -> list[CheckResult]:
    """Servers of one zone must agree on the serial: the ones behind are degraded."""
    newest: dict[str, float] = {}
    for r in results:
        if SERIAL in r.figures:
            zone = _zone_of(r.target)
            newest[zone] = max(newest.get(zone, r.figures[SERIAL]), r.figures[SERIAL])
    out = []
    for r in results:
        top = newest.get(_zone_of(r.target))
        if SERIAL not in r.figures or top is None or r.figures[SERIAL] == top:
            out.append(r)
            continue
        behind = f"SOA serial {r.figures[SERIAL]:.0f} is behind {top:.0f} (transfers lag?)"
        reason = f"{r.reason}; {behind}" if r.reason else behind
        out.append(CheckResult(r.system, r.site, r.target, Status.DEGRADED, reason, r.figures))
    return out


def _zone_of(target: str) -> str:
    return target.removeprefix("zone ").split(" at ")[0]
