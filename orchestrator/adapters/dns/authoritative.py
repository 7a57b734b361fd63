"""Did the change land everywhere? Ask every authoritative server directly.

`verify` polls every listed server (no recursion) until each answers every record with
its new value, or the bound expires, and names each server that did not agree and what
it said. `soa_serials` is the health check's view of replication between them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from orchestrator.adapters.dns.query import (
    NOT_AUTHORITATIVE,
    Answer,
    Question,
    Unsure,
    as_message,
    ask_all,
    quick_verdict,
)
from orchestrator.adapters.dns.records import RecordChange, expected_changes
from orchestrator.config.model import DnsServer
from orchestrator.errors import Failed


@dataclass(frozen=True)
class Mismatch:
    server: str
    name: str
    type: str
    expected: str
    answered: str  # "NXDOMAIN", "REFUSED", "timeout", "198.51.100.7", "no A record" …

    def describe(self) -> str:
        return f"{self.name} {self.type}: {self.answered} (expected {self.expected})"


@dataclass(frozen=True)
class VerifyResult:
    zone: str
    servers: tuple[str, ...]
    records: int
    rounds: int
    mismatches: tuple[Mismatch, ...]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def disagreeing(self) -> list[str]:
        return list(dict.fromkeys(m.server for m in self.mismatches))

    def describe(self, limit: int = 3) -> str:
        """One line: the log line, the step's result and the test oracle."""
        if self.ok:
            return (
                f"zone {self.zone}: all {len(self.servers)} server(s) answer the "
                f"{self.records} new value(s)"
            )
        parts = []
        for server in self.disagreeing():
            mine = [m for m in self.mismatches if m.server == server]
            shown = "; ".join(m.describe() for m in mine[:limit])
            more = f"; and {len(mine) - limit} more" if len(mine) > limit else ""
            parts.append(f"{server} — {shown}{more}")
        return (
            f"zone {self.zone}: {len(self.disagreeing())} of {len(self.servers)} "
            f"server(s) disagree after {self.rounds} round(s): " + " | ".join(parts)
        )


@dataclass(frozen=True)
class SoaSerial:
    server: str
    serial: int | None
    error: str | None = None

    def describe(self) -> str:
        return (
            f"{self.server}: serial {self.serial}"
            if self.error is None
            else (f"{self.server}: {self.error}")
        )


def verify(
    zone: str,
    expected: Mapping[str, str] | Iterable[RecordChange],
    servers: Sequence[DnsServer],
    *,
    timeout: float = 10.0,
    interval: float = 0.1,
    query_timeout: float = 1.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> VerifyResult:
    """Poll until every server answers every expected value, or `timeout` (by `clock`)."""
    if not servers:
        # "All of no servers agree" would be a vacuous success.
        raise Failed(f"zone {zone}: no servers to verify against — list verify_servers")
    changes = expected_changes(expected)
    pending: dict[DnsServer, list[RecordChange]] = {s: list(changes) for s in servers}
    deadline = clock() + timeout
    rounds = 0
    mismatches: list[Mismatch] = []
    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        while True:
            rounds += 1
            checks = {
                s: pool.submit(_check_server, s, c, query_timeout) for s, c in pending.items() if c
            }
            mismatches = [m for future in checks.values() for m in future.result()]
            if not mismatches or clock() >= deadline:
                break
            pending = _still_pending(mismatches, changes, servers)
            sleep(max(0.0, min(interval, deadline - clock())))
    return VerifyResult(
        zone, tuple(str(s) for s in servers), len(changes), rounds, tuple(mismatches)
    )


def soa_serials(zone: str, servers: Sequence[DnsServer], timeout: float = 1.0) -> list[SoaSerial]:
    """Each server's SOA serial of `zone`, or why it could not be read."""
    question = [Question(dns.name.from_text(zone), dns.rdatatype.SOA)]
    with ThreadPoolExecutor(max_workers=max(1, len(servers))) as pool:
        answers = list(pool.map(lambda s: ask_all(s, question, timeout)[0], servers))
    return [_serial(str(s), zone, a) for s, a in zip(servers, answers, strict=True)]


def _serial(server: str, zone: str, raw: Answer) -> SoaSerial:
    answer = as_message(raw) if not isinstance(raw, str) else raw
    problem = _problem(answer)
    if problem is not None:
        return SoaSerial(server, None, problem)
    assert isinstance(answer, dns.message.Message)
    rrset = answer.get_rrset(
        answer.answer, dns.name.from_text(zone), dns.rdataclass.IN, dns.rdatatype.SOA
    )
    if not rrset:
        return SoaSerial(server, None, f"no SOA for {zone}")
    return SoaSerial(server, int(rrset[0].serial))


def _check_server(
    server: DnsServer, changes: Sequence[RecordChange], query_timeout: float
) -> list[Mismatch]:
    questions = [Question(c.owner(), dns.rdatatype.from_text(c.type)) for c in changes]
    answers = ask_all(server, questions, query_timeout)
    result = []
    for change, question, answer in zip(changes, questions, answers, strict=True):
        said = _verdict(change, question, answer)
        if said is not None:
            result.append(Mismatch(str(server), change.name, change.type, change.value, said))
    return result


def _verdict(change: RecordChange, question: Question, answer: Answer) -> str | None:
    if isinstance(answer, bytes):
        quick = quick_verdict(answer, question, change.rdata().to_wire())
        if not isinstance(quick, Unsure):
            return quick
    return judge(change, answer)


def judge(change: RecordChange, answer: Answer) -> str | None:
    """None if the answer is exactly the expected value; else what the server said."""
    parsed = as_message(answer) if not isinstance(answer, str) else answer
    problem = _problem(parsed)
    if problem is not None:
        return problem
    assert isinstance(parsed, dns.message.Message)
    answer = parsed
    owner = change.owner()
    rrset = _find(answer, owner, dns.rdatatype.from_text(change.type))
    if rrset is None:
        cname = _find(answer, owner, dns.rdatatype.CNAME)
        if cname is not None:
            return f"CNAME {cname[0].target}"
        return f"no {change.type} record (NODATA)"
    values = sorted(rd.to_text() for rd in rrset)
    if values == [change.rdata().to_text()]:
        return None
    return ", ".join(values)


def _find(
    answer: dns.message.Message, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType
) -> dns.rrset.RRset | None:
    return next(
        (
            r
            for r in answer.answer
            if r.name == owner and r.rdtype == rdtype and r.rdclass == dns.rdataclass.IN
        ),
        None,
    )


def _problem(answer: dns.message.Message | str) -> str | None:
    """Why an answer cannot be trusted at all (silence, refusal, not authoritative)."""
    if isinstance(answer, str):
        return answer
    if answer.rcode() != dns.rcode.NOERROR:
        return dns.rcode.to_text(answer.rcode())
    if not answer.flags & dns.flags.AA:
        return NOT_AUTHORITATIVE
    return None


def _still_pending(
    mismatches: Iterable[Mismatch], changes: Sequence[RecordChange], servers: Sequence[DnsServer]
) -> dict[DnsServer, list[RecordChange]]:
    """Ask again only what a server got wrong: agreement, once seen, is kept."""
    wrong = {(m.server, m.name, m.type) for m in mismatches}
    return {s: [c for c in changes if (str(s), c.name, c.type) in wrong] for s in servers}
