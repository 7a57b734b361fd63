"""sd_notify over a real unix datagram socket, as systemd listens on one."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.sdnotify import Watchdog, notify, watchdog_interval


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield sock, path
    sock.close()


def test_notify_sends_one_datagram_of_lines(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    assert notify("READY=1", "STATUS=serving", environ={"NOTIFY_SOCKET": path})
    assert sock.recv(4096) == b"READY=1\nSTATUS=serving"


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"sitectl-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert notify("READY=1", environ={"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"READY=1"


def test_without_a_socket_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert not notify("READY=1", environ={})
    # A supervisor gone away (socket file left, nobody bound): refused, not raised.
    assert not notify("READY=1", environ={"NOTIFY_SOCKET": str(tmp_path / "gone")})


def test_watchdog_interval_is_for_this_process_only() -> None:
    mine = str(os.getpid())
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": mine}) == 20.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 20.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({}) is None


def test_watchdog_pets_at_most_every_quarter_interval(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    now = [100.0]
    dog = Watchdog({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "8000000"}, clock=lambda: now[0])
    assert dog.every == 2.0
    assert dog.pet()
    assert sock.recv(4096) == b"WATCHDOG=1"
    now[0] += 1.9
    assert not dog.pet()  # too soon: the tick loop calls it five times a second
    now[0] += 0.1
    assert dog.pet()
    assert sock.recv(4096) == b"WATCHDOG=1"


def test_watchdog_without_systemd_does_nothing() -> None:
    assert not Watchdog({}).pet()


def test_keep_petting_stops_while_unhealthy(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    healthy = threading.Event()
    stop = threading.Event()
    dog = Watchdog({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "200000"})
    dog.keep_petting(healthy.is_set, stop)
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(4096)  # unhealthy: silence, so systemd would restart it
    healthy.set()
    sock.settimeout(2)
    assert sock.recv(4096) == b"WATCHDOG=1"
    stop.set()
