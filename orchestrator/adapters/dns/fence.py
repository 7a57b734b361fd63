"""The fencing record (issue 8, R4): `_sitectl-fence.<zone>` TXT "epoch=N" (pure parts).

A leader claims the zone's fence with its ZooKeeper epoch by compare-and-set, and every
later update carries the prerequisite "the fence holds exactly epoch=N". Once a newer
leader has claimed the fence, the server itself refuses the old leader's updates, even
if that leader wakes up from a pause believing it still leads.

Route 53 has no prerequisites, but a change batch is atomic and its DELETE must match
the record's current value exactly: DELETE the fence as read and CREATE the new one in
the same batch as the records, and the service refuses the whole batch when another
leader wrote the fence in between. Each write's value also carries a write id
(`"epoch=N" "write=ID"`), so every claim is a CREATE of a value never written before.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import dns.name
import dns.rdataclass
import dns.rdataset
import dns.rdatatype

from orchestrator.errors import Failed

FENCE_LABEL = "_sitectl-fence"
FENCE_TTL = 0  # never cached: readers must see the current epoch
_EPOCH = re.compile(r"^epoch=(\d{1,18})$")


def fence_name(zone: str) -> dns.name.Name:
    return dns.name.from_text(FENCE_LABEL, dns.name.from_text(zone))


def fence_text(epoch: int) -> str:
    if epoch < 0:
        raise ValueError("a fencing epoch is never negative")
    return f'"epoch={epoch}"'


def fence_rdataset(epoch: int) -> dns.rdataset.Rdataset:
    return dns.rdataset.from_text(
        dns.rdataclass.IN, dns.rdatatype.TXT, FENCE_TTL, fence_text(epoch)
    )


@dataclass(frozen=True)
class FenceState:
    """What the fence held when read: the exact RRset (for the CAS) and its epoch."""

    zone: str
    rdataset: dns.rdataset.Rdataset | None  # None: no fence yet
    epoch: int | None

    def describe(self) -> str:
        return "no fence" if self.epoch is None else f"epoch={self.epoch}"


def parse_fence(zone: str, rdataset: dns.rdataset.Rdataset | None) -> FenceState:
    """Read the epoch out of the fence RRset; anything but one "epoch=N" is refused,
    because guessing would let a stale leader through."""
    if rdataset is None or len(rdataset) == 0:
        return FenceState(zone, None, None)
    texts = sorted(b"".join(rd.strings).decode("ascii", "replace") for rd in rdataset)
    return FenceState(zone, rdataset, _one_epoch(zone, texts, _EPOCH))


def _one_epoch(zone: str, values: list[str], pattern: re.Pattern[str]) -> int:
    """The epoch of the one value `pattern` reads; Failed for anything else, because
    guessing would let a stale leader through."""
    matches = [pattern.match(v) for v in values]
    if len(values) != 1 or matches[0] is None:
        raise Failed(
            f'zone {zone}: {FENCE_LABEL} holds {values!r}, not one "epoch=N" — make sure '
            "no other sitectl leader runs, then delete the record and let the leader "
            "claim it again"
        )
    return int(matches[0].group(1))


_ROUTE53 = re.compile(r'^"epoch=(\d{1,18})"(?: "write=[0-9a-z-]{1,40}")?$')


def route53_fence_value(epoch: int, write: str) -> str:
    """The fence's TXT value as the Route 53 API takes it (quoted strings)."""
    if epoch < 0:
        raise ValueError("a fencing epoch is never negative")
    return f'{fence_text(epoch)} "write={write}"'


def route53_fence_epoch(zone: str, values: list[str]) -> int | None:
    """The epoch in the fence record's values as the Route 53 API returns them; None
    when there is no fence yet; Failed for anything else, as `parse_fence`."""
    return _one_epoch(zone, values, _ROUTE53) if values else None
