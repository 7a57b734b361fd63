"""Many DNS queries to one server at once: pipelined UDP, TCP for truncated answers.

Verifying 1,000 records on each authoritative server one query at a time costs a round
trip and a full message parse per record. Here a window of queries goes out on one
socket, answers are matched by id and question, and kept as raw wire: `quick_verdict()`
judges the common answers (one A/AAAA value, NXDOMAIN, NODATA, REFUSED…) on the bytes,
and only the rest are parsed by dnspython.
"""

from __future__ import annotations

import select
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import dns.exception
import dns.inet
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from orchestrator.config.model import DnsServer

WINDOW = 128  # queries in flight per server: well within any socket buffer
RESEND_AFTER = 0.2  # seconds of silence before the unanswered queries are sent again
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")
_QR, _AA, _TC, _RCODE = 0x8000, 0x0400, 0x0200, 0x000F
_POINTER_TO_QUESTION = b"\xc0\x0c"  # the answer's owner compressed to the question name

# An answer is the server's raw message, a parsed one (TCP), or why there is none.
Answer = bytes | dns.message.Message | str


@dataclass(frozen=True)
class Question:
    name: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    wire: bytes = field(init=False, repr=False)

    def __post_init__(self) -> None:
        section = self.name.to_wire() + struct.pack("!HH", self.rdtype, dns.rdataclass.IN)
        object.__setattr__(self, "wire", section)

    def query_wire(self, query_id: int) -> bytes:
        # No RD: authoritative servers only. No EDNS: answers over 512 bytes come back
        # truncated and are asked again over TCP.
        return _HEADER.pack(query_id, 0, 1, 0, 0, 0) + self.wire

    def answers(self, wire: bytes) -> bool:
        """Is `wire` a response to this question (id is checked by the caller)?"""
        if len(wire) < 12 + len(self.wire) or not wire[2] & 0x80:
            return False
        echoed = wire[12 : 12 + len(self.wire)]
        # Names compare case-insensitively; type and class (last 4 bytes) exactly.
        return echoed[:-4].lower() == self.wire[:-4].lower() and echoed[-4:] == self.wire[-4:]


class Unsure:
    """`quick_verdict` could not decide from the bytes alone: parse the message."""


UNSURE = Unsure()
NOT_AUTHORITATIVE = "not authoritative for the zone (referral or cache)"
_ADDRESS_FAMILIES = {dns.rdatatype.A: socket.AF_INET, dns.rdatatype.AAAA: socket.AF_INET6}


def quick_verdict(wire: bytes, question: Question, rdata_wire: bytes) -> str | Unsure | None:
    """Judge the common answers on the bytes: None (agrees), what the server said, or
    UNSURE. Polling 1,000 records that still hold the old value must not cost 1,000
    full parses per round."""
    if len(wire) < 12:
        return UNSURE
    _, flags, qdcount, ancount, _, _ = _HEADER.unpack_from(wire)
    if not flags & _QR or flags & _TC or qdcount != 1:
        return UNSURE
    if flags & _RCODE:
        return dns.rcode.to_text(flags & _RCODE)
    if not flags & _AA:
        return NOT_AUTHORITATIVE
    if ancount == 0:
        return f"no {dns.rdatatype.to_text(question.rdtype)} record (NODATA)"
    pos = 12 + len(question.wire)
    if ancount != 1 or wire[pos : pos + 2] != _POINTER_TO_QUESTION:
        return UNSURE
    if len(wire) < pos + 2 + _RR.size:
        return UNSURE
    rdtype, rdclass, _, rdlength = _RR.unpack_from(wire, pos + 2)
    start = pos + 2 + _RR.size
    rdata = wire[start : start + rdlength]
    if rdtype != question.rdtype or rdclass != dns.rdataclass.IN or len(rdata) != rdlength:
        return UNSURE
    if rdata == rdata_wire:
        return None
    family = _ADDRESS_FAMILIES.get(question.rdtype)
    if family is None:
        return UNSURE  # names inside CNAME/TXT rdata may be compressed: parse them
    try:
        return socket.inet_ntop(family, rdata)
    except ValueError:
        return UNSURE


def as_message(answer: bytes | dns.message.Message) -> dns.message.Message | str:
    if isinstance(answer, dns.message.Message):
        return answer
    try:
        return dns.message.from_wire(answer)
    except Exception as exc:  # bytes from the network: no parse error may escape
        return f"malformed answer ({type(exc).__name__})"


def ask_all(server: DnsServer, questions: Sequence[Question], idle_timeout: float) -> list[Answer]:
    """One answer per question, in order. Gives up after `idle_timeout` of silence."""
    answers: list[Answer | None] = [None] * len(questions)
    try:
        sock = _connect(server)
    except OSError as exc:
        return [f"cannot reach ({exc.strerror or exc})"] * len(questions)
    with sock:
        _pipeline(sock, questions, answers, idle_timeout)
    for index, answer in enumerate(answers):
        if isinstance(answer, bytes) and len(answer) > 3 and answer[2] & (_TC >> 8):
            answers[index] = ask_tcp(server, questions[index], idle_timeout)
    return [a if a is not None else "timeout" for a in answers]


def ask_tcp(server: DnsServer, question: Question, timeout: float) -> Answer:
    query = dns.message.make_query(question.name, question.rdtype)
    query.flags = 0
    try:
        _, address = resolve(server)
        return dns.query.tcp(query, address, port=server.port, timeout=timeout)
    except dns.exception.Timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "connection refused"
    except (OSError, EOFError, dns.exception.DNSException) as exc:
        return f"error ({type(exc).__name__})"


def resolve(server: DnsServer) -> tuple[int, str]:
    """(address family, address) of a server given by address or by host name.

    Raises OSError (socket.gaierror) when a name does not resolve.
    """
    try:
        return dns.inet.af_for_address(server.address), server.address
    except ValueError:
        pass  # a host name, e.g. a provider's ns-1.example.net
    family, _, _, _, sockaddr = socket.getaddrinfo(
        server.address, server.port, type=socket.SOCK_DGRAM
    )[0]
    return family, str(sockaddr[0])


def _connect(server: DnsServer) -> socket.socket:
    family, address = resolve(server)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.connect((address, server.port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _pipeline(
    sock: socket.socket,
    questions: Sequence[Question],
    answers: list[Answer | None],
    idle_timeout: float,
) -> None:
    # Ids repeat every 65,536 questions; the window keeps repeats from being in flight.
    in_flight: dict[int, int] = {}
    next_index = 0
    last_heard = time.monotonic()
    # A lost datagram costs one resend interval, not the whole idle timeout.
    resend_after = min(RESEND_AFTER, idle_timeout)
    while next_index < len(questions) or in_flight:
        while next_index < len(questions) and len(in_flight) < WINDOW:
            query_id = next_index % 65536
            if not _send(sock, questions[next_index].query_wire(query_id)):
                return _fail_rest(answers, "connection refused")
            in_flight[query_id] = next_index
            next_index += 1
        readable, _, _ = select.select([sock], [], [], resend_after)
        if readable:
            waiting = len(in_flight)
            if not _receive(sock, questions, in_flight, answers):
                return _fail_rest(answers, "connection refused")
            # Only answers count as hearing from the server: a peer that sends garbage
            # to every query must not keep us waiting forever.
            if len(in_flight) < waiting:
                last_heard = time.monotonic()
                continue
        if time.monotonic() - last_heard >= idle_timeout:
            return _fail_rest(answers, "timeout")
        if readable:
            continue  # garbage arrived: the queries were heard, no need to resend yet
        for query_id, index in in_flight.items():
            if not _send(sock, questions[index].query_wire(query_id)):
                return _fail_rest(answers, "connection refused")
    return None


def _send(sock: socket.socket, wire: bytes) -> bool:
    try:
        sock.send(wire)
    except ConnectionRefusedError:
        return False
    except BlockingIOError:
        # Send buffer full: wait for room rather than drop the query.
        select.select([], [sock], [], 1.0)
        sock.send(wire)
    return True


def _receive(
    sock: socket.socket,
    questions: Sequence[Question],
    in_flight: dict[int, int],
    answers: list[Answer | None],
) -> bool:
    """Drain what has arrived; False if the server's port is closed (ICMP refused)."""
    deadline = time.monotonic() + 0.05
    while time.monotonic() < deadline:
        try:
            wire = sock.recv(65535)
        except BlockingIOError:
            return True
        except ConnectionRefusedError:
            return False
        if len(wire) < 12:
            continue  # garbage answers nothing; the question will time out
        index = in_flight.get(int.from_bytes(wire[:2], "big"))
        if index is None or not questions[index].answers(wire):
            continue  # a late duplicate or a stranger's packet
        del in_flight[int.from_bytes(wire[:2], "big")]
        answers[index] = wire
    return True


def _fail_rest(answers: list[Answer | None], reason: str) -> None:
    for index, answer in enumerate(answers):
        if answer is None:
            answers[index] = reason
