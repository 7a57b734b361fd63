"""Every TSIG key file is readable and its key is accepted by the zone's primary.

The proof is the one pre-flight and health already use (Rfc2136Provider.check_key): a
signed update whose prerequisite is the apex SOA and whose only change deletes an RRset
that does not exist. The server checks the signature and the key's grant, and changes
nothing: the zone's serial stays as it was (the lab test reads it before and after).
"""

from __future__ import annotations

from orchestrator.config.model import DnsZone, Topology
from orchestrator.errors import SitectlError
from orchestrator.evaluate.findings import Finding, note, ok, problem

CHECK = "tsig"
TIMEOUT_S = 3.0


def _source(zone: DnsZone) -> str:
    tsig = zone.tsig
    if tsig is None:
        return "no key"
    if tsig.key_file is not None:
        return f"key file {tsig.key_file}"
    return f"key {tsig.name} ({tsig.secret.describe() if tsig.secret else 'no secret'})"


def judge_zone(
    zone: str, source: str, unreadable: str | None, accepted: list[str], refusals: list[str]
) -> Finding:
    """One zone's finding from its key's loading and the servers' answers (pure)."""
    if unreadable is not None:
        return problem(CHECK, zone, f"{source} cannot be used: {unreadable}")
    if accepted:
        return ok(CHECK, zone, f"{source} is accepted by {', '.join(accepted)} (a no-op update)")
    said = "; ".join(refusals) or "no update server is configured"
    return problem(CHECK, zone, f"no server accepts {source}: {said}")


def check_zone(topo: Topology, zone: DnsZone, timeout: float = TIMEOUT_S) -> Finding:
    if zone.provider != "rfc2136":
        return note(
            CHECK,
            zone.name,
            f"a {zone.provider} zone has no no-op signed update; its credentials are "
            "checked by the move's DNS step",
        )
    from orchestrator.adapters.dns.primary import accepting, candidates
    from orchestrator.adapters.dns.tsig import load_tsig

    assert zone.tsig is not None  # validate: an rfc2136 zone has a tsig section
    try:
        load_tsig(zone.tsig, topo.base_dir)
    except (SitectlError, OSError) as exc:
        return judge_zone(zone.name, _source(zone), str(exc), [], [])
    found = accepting(zone, candidates(zone), topo.base_dir, timeout)
    return judge_zone(
        zone.name,
        _source(zone),
        None,
        [str(s) for s in found.accepted],
        [" ".join(r.split())[:200] for r in found.refusals],
    )


def check_zones(topo: Topology) -> list[Finding]:
    return [check_zone(topo, zone) for zone in topo.dns.zones]
