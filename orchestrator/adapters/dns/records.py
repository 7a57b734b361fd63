"""The records a DNS step changes, and how they are cut into update messages (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from orchestrator.config.model import DnsZone
from orchestrator.errors import Failed

# A DNS message over TCP may be 65,535 bytes. The size estimate counts every name
# uncompressed (an upper bound), so 60,000 estimated bytes stay under the limit with
# room for the header, prerequisites and the TSIG record.
SAFE_MESSAGE_BYTES = 60_000
# Fixed cost of one replace in the update section besides the two owner names: the
# delete RR (type, class, TTL, rdlength) and the add RR's header.
_PER_CHANGE_OVERHEAD = 2 * 10
# Headroom for header, zone section, fence prerequisite, tag record and TSIG.
_MESSAGE_OVERHEAD = 1_024


@dataclass(frozen=True)
class RecordChange:
    """One RRset to set to exactly one value (what a `dns.update` step carries)."""

    name: str  # absolute, with trailing dot
    type: str  # A, AAAA, CNAME, TXT
    ttl: int
    value: str

    def rdata(self) -> dns.rdata.Rdata:
        try:
            return dns.rdata.from_text(dns.rdataclass.IN, self.type, self._text_value())
        except Exception as exc:  # dnspython raises many types for bad rdata text
            raise Failed(
                f"{self.value!r} is not a valid {self.type} value for {self.name}: {exc}"
            ) from None

    def _text_value(self) -> str:
        # TXT values from the topology are plain strings; quote them for the parser.
        if self.type == "TXT" and not self.value.startswith('"'):
            escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
            return f'"{escaped}"'
        return self.value

    def owner(self) -> dns.name.Name:
        return dns.name.from_text(self.name)

    def wire_estimate(self) -> int:
        """An upper bound of this change's bytes in an update (names uncompressed)."""
        name_len = len(self.owner().to_wire() or b"")
        return 2 * name_len + _PER_CHANGE_OVERHEAD + len(self.rdata().to_wire())


def changes_from_params(params: Mapping[str, Any]) -> list[RecordChange]:
    """The records of a plan step's params (`records: [{name, type, ttl, value}]`)."""
    try:
        return [
            RecordChange(
                name=_absolute(r["name"]),
                type=str(r.get("type", "A")).upper(),
                ttl=int(r.get("ttl", 60)),
                value=str(r["value"]),
            )
            for r in params["records"]
        ]
    except (KeyError, TypeError, ValueError) as exc:
        raise Failed(
            f"the dns.update step's params are malformed ({exc!r}) — re-create the plan"
        ) from None


def changes_for_site(zone: DnsZone, site: str) -> list[RecordChange]:
    """The zone's records as they must be when `site` is active."""
    missing = [r.name for r in zone.records if site not in r.values]
    if missing:
        raise Failed(
            f"zone {zone.name}: records {', '.join(missing)} have no value for "
            f"site {site} — add one to the topology"
        )
    return [
        RecordChange(_absolute(zone.fqdn(r)), r.type, r.ttl, r.values[site]) for r in zone.records
    ]


def expected_changes(
    expected: Mapping[str, str] | Iterable[RecordChange], ttl: int = 0
) -> list[RecordChange]:
    """Accept {fqdn: value} (type inferred: IPv4 → A, IPv6 → AAAA, else CNAME) or changes."""
    if isinstance(expected, Mapping):
        return [RecordChange(_absolute(n), infer_type(v), ttl, v) for n, v in expected.items()]
    return list(expected)


def infer_type(value: str) -> str:
    try:
        address = ip_address(value)
    except ValueError:
        return "CNAME"
    return "A" if address.version == 4 else "AAAA"


def batches(
    changes: Sequence[RecordChange], limit: int = SAFE_MESSAGE_BYTES
) -> list[list[RecordChange]]:
    """Cut changes into as few messages as fit under `limit` bytes, keeping order.

    One message per zone is the rule (atomic on the server); more only when one would
    be too large to send safely.
    """
    budget = limit - _MESSAGE_OVERHEAD
    result: list[list[RecordChange]] = [[]]
    used = 0
    for change in changes:
        size = change.wire_estimate()
        if size > budget:
            raise Failed(
                f"record {change.name} {change.type} is too large for one "
                f"update message ({size} bytes)"
            )
        if used + size > budget and result[-1]:
            result.append([])
            used = 0
        result[-1].append(change)
        used += size
    return [b for b in result if b]


def in_zone(changes: Iterable[RecordChange], zone: str) -> list[RecordChange]:
    """Refuse records outside the zone: the server would answer NOTZONE for them."""
    origin = dns.name.from_text(zone)
    items = list(changes)
    outside = [c.name for c in items if not c.owner().is_subdomain(origin)]
    if outside:
        raise Failed(
            f"records {', '.join(outside)} are not in zone {zone} — fix the topology's record names"
        )
    return items


def _absolute(name: str) -> str:
    return name if name.endswith(".") else name + "."
