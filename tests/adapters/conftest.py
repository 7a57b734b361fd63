"""Fixtures of the DNS adapter's tests: a private BIND pair, a blackhole, recorded sleeps."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.adapters.dns import RetryPolicy, Rfc2136Provider, load_key_file
from orchestrator.config.model import DnsServer
from tests.adapters.bindlab import BLACKHOLE, PORT, BindPair, tsig_keygen

ZONES = {
    "alpha.test.": {"mail": "192.0.2.21", "smtp": "192.0.2.11"},
    "beta.test.": {"mail": "192.0.2.121"},
    "fence.test.": {"mail": "192.0.2.221"},
}


@pytest.fixture(scope="module")
def bind(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BindPair]:
    home = tmp_path_factory.mktemp("bind")
    with BindPair.running(home, ZONES) as pair:
        yield pair
    assert pair.leftover == [], "a loopback alias of the DNS tests was left behind"
    assert all(proc.poll() is not None for proc in pair.stopped), "a named is still running"


@dataclass
class Sleeps:
    """Injected sleep: records each wait instead of waiting, so tests never sleep."""

    calls: list[float] = field(default_factory=list)

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def provider(bind: BindPair, sleeps: Sleeps):
    """A provider factory: zone, servers and key may be overridden per test."""

    def make(
        zone: str = "alpha.test.",
        servers: tuple[DnsServer, ...] | None = None,
        key_file: Path | None = None,
        timeout: float = 2.0,
    ) -> Rfc2136Provider:
        key = load_key_file(key_file or bind.ddns_key_file)
        return Rfc2136Provider(
            zone,
            servers or (bind.primary,),
            key,
            timeout=timeout,
            retry=RetryPolicy(attempts=3, sleep=sleeps),
        )

    return make


@pytest.fixture
def foreign_key(tmp_path: Path):
    """Key files the server does not accept: `(name)` → a fresh tsig-keygen file."""

    def make(name: str) -> Path:
        return tsig_keygen(tmp_path / f"{name}.key", name)

    return make


@dataclass
class Blackhole:
    """A DNS 'server' on 127.0.10.3 that takes packets and connections, never answers."""

    server: DnsServer
    sockets: list[socket.socket]


@pytest.fixture
def blackhole() -> Iterator[Blackhole]:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # 127/8 is local without an alias; bind both before listening so neither refuses.
    udp.bind((BLACKHOLE, PORT))
    tcp.bind((BLACKHOLE, PORT))
    tcp.listen(16)  # the kernel completes handshakes; nobody ever reads
    try:
        yield Blackhole(DnsServer(address=BLACKHOLE, port=PORT), [udp, tcp])
    finally:
        udp.close()
        tcp.close()


def run_together(*calls):
    """Run callables in threads started at once; return their results (or exceptions)."""
    results: list[object] = [None] * len(calls)

    def runner(index: int) -> None:
        try:
            results[index] = calls[index]()
        except Exception as exc:  # the caller inspects it
            results[index] = exc

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results
