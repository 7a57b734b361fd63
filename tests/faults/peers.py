"""Hostile peers on loopback: a DNS server and an HTTP (S3) server that answer badly.

Each is a real socket server in a thread, on 127.0.0.1 and a free port, so the
adapters talk to it over the network exactly as to BIND or an S3 endpoint. What it
answers is a function of what it received; what it received is kept for assertions.
"""

from __future__ import annotations

import contextlib
import errno
import select
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tests.loopback import listener, serving

# What the DNS peer sends back over TCP for one message: bytes sent as they are (the
# caller frames them, or deliberately does not), or None to close the connection.
TcpReply = Callable[[bytes], bytes | None]
UdpReply = Callable[[bytes], bytes | None]


def framed(message: bytes) -> bytes:
    return struct.pack("!H", len(message)) + message


def question_end(query: bytes) -> int:
    """Offset just past the first question (name, type, class) of a query's wire."""
    index = 12
    while index < len(query) and query[index] != 0:
        index += query[index] + 1
    return index + 5


def bare_reply(query: bytes, rcode: int, flags: int = 0) -> bytes:
    """An unsigned reply echoing the query's id, opcode and question."""
    qid, qflags = struct.unpack_from("!HH", query)
    header = struct.pack("!HHHHHH", qid, 0x8000 | (qflags & 0x7800) | flags | rcode, 1, 0, 0, 0)
    return header + query[12 : question_end(query)]


@dataclass
class HostileDns:
    tcp_reply: TcpReply
    udp_reply: UdpReply = field(default=lambda _q: None)
    received: list[bytes] = field(default_factory=list)
    address: str = "127.0.0.1"
    port: int = 0

    @contextlib.contextmanager
    def running(self) -> Iterator[HostileDns]:
        tcp, udp = _pair(self.address)
        self.port = tcp.getsockname()[1]
        try:
            with serving(lambda stop: self._serve(tcp, udp, stop)):
                yield self
        finally:
            tcp.close()
            udp.close()

    def _serve(self, tcp: socket.socket, udp: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            readable, _, _ = select.select([tcp, udp], [], [], 0.05)
            if udp in readable:
                query, peer = udp.recvfrom(65535)
                self.received.append(query)
                answer = self.udp_reply(query)
                if answer is not None:
                    udp.sendto(answer, peer)
            if tcp in readable:
                conn, _ = tcp.accept()
                with conn:
                    self._one_tcp(conn)

    def _one_tcp(self, conn: socket.socket) -> None:
        conn.settimeout(2)
        try:
            size = struct.unpack("!H", _read(conn, 2))[0]
            query = _read(conn, size)
        except (OSError, struct.error):
            return
        self.received.append(query)
        answer = self.tcp_reply(query)
        if answer is not None:
            with contextlib.suppress(OSError):
                conn.sendall(answer)


def _read(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise OSError(errno.ECONNRESET, "closed")
        data += chunk
    return data


def _pair(address: str) -> tuple[socket.socket, socket.socket]:
    """A TCP listener and a UDP socket on the same free port."""
    for _ in range(50):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind((address, 0))
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            udp.bind((address, tcp.getsockname()[1]))
        except OSError:
            tcp.close()
            udp.close()
            continue
        tcp.listen(8)
        return tcp, udp
    raise RuntimeError("no free port with both TCP and UDP on loopback")


# -- HTTP ---------------------------------------------------------------------------------

HttpReply = Callable[[bytes], bytes | None]  # request head → raw response bytes, or None


@dataclass
class HostileHttp:
    """Answers every HTTP request with raw bytes (None: close without a word,
    "silence": keep the connection and never answer)."""

    reply: HttpReply | str
    requests: list[bytes] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @contextlib.contextmanager
    def running(self) -> Iterator[HostileHttp]:
        server = listener(16)
        self.port = server.getsockname()[1]
        held: list[socket.socket] = []
        try:
            with serving(lambda stop: self._serve(server, stop, held)):
                yield self
        finally:
            for conn in held:
                conn.close()
            server.close()

    def _serve(self, server: socket.socket, stop: threading.Event, held: list) -> None:
        while not stop.is_set():
            readable, _, _ = select.select([server], [], [], 0.05)
            if not readable:
                continue
            conn, _ = server.accept()
            conn.settimeout(2)
            head = b""
            with contextlib.suppress(OSError):
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
            self.requests.append(head)
            if self.reply == "silence":
                held.append(conn)  # keep it open, say nothing
                continue
            answer = self.reply(head) if callable(self.reply) else None
            with contextlib.suppress(OSError):
                if answer is not None:
                    conn.sendall(answer)
            conn.close()


def http_response(status: int, body: bytes, reason: str = "X", **headers: str) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def s3_error(status: int, code: str, message: str = "hostile") -> bytes:
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message><RequestId>r7</RequestId></Error>"
    ).encode()
    return http_response(status, body, Content_Type="application/xml")
