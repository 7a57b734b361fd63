"""Ledgers of side effects kept by the servers themselves, not by sitectl: what a test
reads to prove that an effect landed once, whatever sitectl's own records say.

- DNS: the zone's history on its primary, by IXFR from the serial before the operation:
  one entry per update transaction (a fence claim, a record change), as BIND journaled it.
- Volume: the mirror relationship's own history (the driver's state file): every final
  transfer (`update`) and every `break`, with the driver's timestamps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.message
import dns.name
import dns.query
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring

from orchestrator.adapters.dns.fence import FENCE_LABEL
from orchestrator.adapters.dns.rfc2136 import TAG_LABEL
from orchestrator.config.model import DnsServer
from orchestrator.lab import bind
from orchestrator.lab.credentials import read_tsig_key
from orchestrator.storage import MirrorConfig
from tests.engine.conftest import Cluster

Record = tuple[str, str, str]  # owner, type, rdata text


@dataclass(frozen=True)
class Transaction:
    """One update transaction of a zone: what it removed and added (SOA excluded)."""

    serial: int
    deleted: tuple[Record, ...]
    added: tuple[Record, ...]

    def adds(self, owner: str, rdtype: str) -> list[str]:
        return [text for o, t, text in self.added if o == owner and t == rdtype]


def soa_serial(server: DnsServer, zone: str) -> int:
    query = dns.message.make_query(zone, dns.rdatatype.SOA)
    reply = dns.query.tcp(query, server.address, port=server.port, timeout=3)
    return int(reply.answer[0][0].serial)


def zone_history(cluster: Cluster, server: DnsServer, zone: str, since: int) -> list[Transaction]:
    """Every transaction of `zone` on `server` after serial `since`, by IXFR (RFC 1995):
    the primary answers from its journal, one difference sequence per transaction."""
    key = read_tsig_key(bind.key_path(cluster.lab.state(), bind.XFER_KEY))
    rrs: list[tuple[str, str, Any]] = []
    for message in dns.query.xfr(
        server.address,
        zone,
        rdtype=dns.rdatatype.IXFR,
        serial=since,
        port=server.port,
        keyring=dns.tsigkeyring.from_text(key.keyring()),
        keyname=key.name,
        keyalgorithm=dns.tsig.HMAC_SHA256,
        relativize=False,
        timeout=5,
        lifetime=15,
    ):
        for rrset in message.answer:
            for rdata in rrset:
                rrs.append((rrset.name.to_text(), dns.rdatatype.to_text(rrset.rdtype), rdata))
    assert rrs and rrs[0][1] == "SOA", f"{zone}: no IXFR answer from {server}"
    final = int(rrs[0][2].serial)
    if len(rrs) == 1:
        assert final == since, f"{zone}: {server} answered serial {final} without a history"
        return []
    assert rrs[1][1] == "SOA", (
        f"{zone}: {server} sent the whole zone, not its history since serial {since} "
        "(its journal does not reach back that far)"
    )
    history: list[Transaction] = []
    i = 1
    while not (i == len(rrs) - 1 and int(rrs[i][2].serial) == final):
        i += 1  # the serial before the transaction
        deleted = []
        while rrs[i][1] != "SOA":
            deleted.append(_record(rrs[i]))
            i += 1
        serial = int(rrs[i][2].serial)
        i += 1  # the serial after it
        added = []
        while rrs[i][1] != "SOA":
            added.append(_record(rrs[i]))
            i += 1
        history.append(Transaction(serial, tuple(deleted), tuple(added)))
    return history


def _record(rr: tuple[str, str, Any]) -> Record:
    owner, rdtype, rdata = rr
    return owner, rdtype, rdata.to_text()


@dataclass(frozen=True)
class ZoneLedger:
    """What an operation did to one zone, read from the zone's own history."""

    zone: str
    history: list[Transaction]

    def record_changes(self, record: str) -> list[Transaction]:
        return [t for t in self.history if t.adds(record, "A")]

    def fence_epochs(self) -> list[int]:
        fence = dns.name.from_text(FENCE_LABEL, dns.name.from_text(self.zone)).to_text()
        texts = [text for t in self.history for text in t.adds(fence, "TXT")]
        return [int(text.strip('"').partition("=")[2]) for text in texts]

    def tags(self) -> list[str]:
        tag = dns.name.from_text(TAG_LABEL, dns.name.from_text(self.zone)).to_text()
        return [text.strip('"') for t in self.history for text in t.adds(tag, "TXT")]

    def unexplained(self, record: str) -> list[Transaction]:
        """Transactions that are neither a fence claim nor the record's change."""
        fence = dns.name.from_text(FENCE_LABEL, dns.name.from_text(self.zone)).to_text()
        return [t for t in self.history if not t.adds(fence, "TXT") and not t.adds(record, "A")]


def mirror_history(cluster: Cluster) -> list[dict[str, Any]]:
    """The mirror relationship's recent operations, as its driver recorded them."""
    config = MirrorConfig.load(cluster.lab.state_dir / "volumes" / "mirror-mail.config.json")
    state: dict[str, Any] = json.loads(Path(config.state_file).read_text())
    return list(state.get("history", []))
