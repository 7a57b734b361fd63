"""The DNS adapter: repoint a zone's records at the target site, fenced, and verify.

What the engine calls (one provider per zone):

    provider = provider_for(topology, zone)             # Rfc2136Provider | Route53Provider
    provider.apply_claiming(changes, epoch=epoch, tag=f"{op}/{step.id}")
        # the fence claimed in the same RFC 2136 message or Route 53 batch; LeaseLost if stale
    verify(zone.name, changes, zone.verify_servers, timeout=...)  # → VerifyResult

Errors: Unavailable (silence: retry / next server), Failed (refused, bad key, bad input),
LeaseLost (the server's fence check refused us: stop now).
"""

from __future__ import annotations

from orchestrator.adapters.dns.authoritative import (
    Mismatch,
    SoaSerial,
    VerifyResult,
    soa_serials,
    verify,
)
from orchestrator.adapters.dns.fence import FENCE_LABEL, FenceState, fence_name, parse_fence
from orchestrator.adapters.dns.records import (
    RecordChange,
    batches,
    changes_for_site,
    changes_from_params,
)
from orchestrator.adapters.dns.retry import NO_RETRY, RetryPolicy
from orchestrator.adapters.dns.rfc2136 import ApplyResult, FenceClaim, Rfc2136Provider
from orchestrator.adapters.dns.route53 import Route53Provider
from orchestrator.adapters.dns.tsig import TsigError, TsigKey, load_key_file, load_tsig
from orchestrator.config.model import DnsZone, Topology

__all__ = [
    "FENCE_LABEL",
    "NO_RETRY",
    "ApplyResult",
    "FenceClaim",
    "FenceState",
    "Mismatch",
    "RecordChange",
    "RetryPolicy",
    "Rfc2136Provider",
    "Route53Provider",
    "SoaSerial",
    "TsigError",
    "TsigKey",
    "VerifyResult",
    "batches",
    "changes_for_site",
    "changes_from_params",
    "fence_name",
    "load_key_file",
    "load_tsig",
    "parse_fence",
    "provider_for",
    "soa_serials",
    "verify",
]


def provider_for(
    topology: Topology, zone: DnsZone, retry: RetryPolicy | None = None
) -> Rfc2136Provider | Route53Provider:
    """The provider the zone's topology entry names, with its keys or credentials loaded."""
    options = {} if retry is None else {"retry": retry}
    if zone.provider == "rfc2136":
        return Rfc2136Provider.from_zone(zone, topology.base_dir, **options)
    return Route53Provider.from_zone(zone, topology.base_dir, **options)
