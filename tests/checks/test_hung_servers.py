"""A mail server that accepts the connection and then says nothing (hung, SIGSTOPped:
the kernel still completes the handshake) is TIMEOUT, never WRONG: the controller
counts a TIMEOUT towards "down", a WRONG answer as a server that is up but broken.

Real sockets on loopback, each server speaking as far as the case says, then silent.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from orchestrator.adapters.probes import Answer, Login, probe


@pytest.fixture
def silent_after() -> Iterator[tuple[list[bytes], int]]:
    """A server that sends the lines in the list it hands back, then nothing."""
    said: list[bytes] = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    open_sockets: list[socket.socket] = []
    stop = threading.Event()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            open_sockets.append(conn)
            for line in said:
                conn.sendall(line)
            # and then silence, the connection held open

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield said, server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in open_sockets:
        conn.close()
    server.close()


@pytest.mark.parametrize(
    ("kind", "greeting"),
    [
        ("smtp", []),  # no greeting at all
        ("smtp", [b"220 mx.example ESMTP\r\n"]),  # greets, then hangs on EHLO
        ("imap", []),
        ("imap", [b"* OK [CAPABILITY IMAP4rev1] ready\r\n"]),  # hangs on the next command
    ],
)
def test_a_server_that_stops_answering_is_a_timeout(
    silent_after: tuple[list[bytes], int], kind: str, greeting: list[bytes]
) -> None:
    said, port = silent_after
    said.extend(greeting)
    login = Login("probe", "secret") if kind == "imap" else None
    result = probe(kind, "127.0.0.1", port, timeout=0.5, login=login)
    assert result.answer is Answer.TIMEOUT, result
    assert "no answer within 0.5 s" in result.detail


def test_a_server_that_answers_nonsense_is_still_wrong(
    silent_after: tuple[list[bytes], int],
) -> None:
    said, port = silent_after
    said.append(b"500 go away\r\n")
    result = probe("smtp", "127.0.0.1", port, timeout=0.5)
    assert result.answer is Answer.WRONG, result
