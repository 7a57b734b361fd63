"""Controllers against a private 3-node ZooKeeper on 127.0.11.1-3, with real TCP
listeners on 127.0.21.N standing in for each datacenter's application.

The ensemble is started the way tests/coordination/conftest.py starts its own (so these
tests may freeze ZooKeeper nodes without touching the lab or the coordination tests);
each test gets a fresh cluster name, so tests never see each other's znodes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import load_topology
from orchestrator.inventory import render_inventory_text
from orchestrator.lab import controllers as lab_controllers
from orchestrator.lab import netns
from tests.zkensemble import Ensemble, running_ensemble, serving

ZK_IPS = ("127.0.11.1", "127.0.11.2", "127.0.11.3")
APP_IPS = {"dc1": "127.0.21.1", "dc2": "127.0.21.2"}
APP_PORT = 2525
HTTP_IPS = {"dc1": "127.0.22.1", "dc2": "127.0.22.2", "witness": "127.0.22.3"}
HTTP_PORT = 9400


def wait_for(condition: Any, what: str, within: float = 30.0) -> Any:
    """Poll until `condition()` is truthy; a bound on waiting, never a timing assertion."""
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = condition()
            if last:
                return last
        except Exception as exc:  # a node that is starting or frozen refuses for a while
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {within:.0f} s (last: {last!r})")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ensemble]:
    # Another session running these tests holds the addresses; using its ensemble would
    # make freezing "our" nodes a no-op. Wait for it (bounded), as the lab fixture does.
    wait_for(
        lambda: not any(serving(ip) for ip in ZK_IPS),
        f"{', '.join(ZK_IPS)} free of another session's ZooKeeper",
        within=900,
    )
    with running_ensemble(tmp_path_factory.mktemp("zk"), ZK_IPS) as ens:
        yield ens


class App:
    """A datacenter's application: a real listener that accepts (up) or is gone (down)."""

    def __init__(self, ip: str) -> None:
        self.ip = ip
        self._sock: socket.socket | None = None
        self._stop = threading.Event()

    def up(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.ip, APP_PORT))
        sock.listen(64)
        sock.settimeout(0.2)
        self._sock, self._stop = sock, threading.Event()
        threading.Thread(target=self._accept, args=(sock, self._stop), daemon=True).start()

    def down(self) -> None:
        if self._sock is not None:
            self._stop.set()
            # shutdown() wakes the accepting thread; close() alone would leave the
            # listener alive in the kernel until that accept() returned.
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)
            self._sock.close()
            self._sock = None

    @staticmethod
    def _accept(sock: socket.socket, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except (TimeoutError, OSError):
                continue
            conn.close()


@pytest.fixture
def apps() -> Iterator[dict[str, App]]:
    found = {site: App(ip) for site, ip in APP_IPS.items()}
    for app in found.values():
        app.up()
    yield found
    for app in found.values():
        app.down()


def topology_doc(cluster: str, zk_hosts: str, *, automatic: bool = False) -> dict[str, Any]:
    return {
        "cluster": cluster,
        "active_site": "dc1",
        "local_state": "state",
        "sites": {
            "dc1": {"kind": "datacenter"},
            "dc2": {"kind": "datacenter"},
            "witness": {"kind": "witness"},
        },
        "ansible": {"inventory": "hosts.yml"},
        "hosts": [
            {"name": f"{site}-app", "site": site, "roles": ["app"], "address": ip}
            for site, ip in APP_IPS.items()
        ],
        "roles": {
            "app": {
                "start_order": 1,
                "services": ["app"],
                "probes": [{"kind": "tcp", "port": APP_PORT}],
            }
        },
        "dns": {
            "zones": [
                {
                    "name": "example.test.",
                    "scope": "external",
                    "provider": "route53",
                    "route53": {"hosted_zone_id": "Z1"},
                    "verify_servers": ["127.0.21.9:5353"],
                    "records": [{"name": "mail", "values": APP_IPS}],
                }
            ]
        },
        "zookeeper": {
            "hosts": [
                {"address": a, "site": s}
                for a, s in zip(zk_hosts.split(","), ("dc1", "dc2", "witness"), strict=True)
            ],
            "chroot": "/sitectl-controller-tests",
            "session_timeout": "4s",
            # The tests' private ensemble speaks plain TCP without auth, said explicitly.
            "insecure": True,
        },
        "policy": {
            "probe_interval": "500ms",
            "consecutive_failures": 3,
            "automatic_promotion": automatic,
            "block_period": "1h",
        },
    }


@dataclass
class Controllers:
    """Controller processes (`python -m orchestrator.cli.controller controller run`)."""

    dir: Path
    topology: Path
    env: dict[str, str] | None = None
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    # On the lab: each controller runs in its site's network namespace, on the site's
    # address, as `sitectl lab controllers up` runs them (a WAN cut reaches it).
    lab_root: Path | None = None
    # The bearer token of their endpoints (default: the lab's, else beside the topology).
    token: Path | None = None

    def __post_init__(self) -> None:
        if self.token is None:
            self.token = (
                lab_controllers.token_file(self.lab_root)
                if self.lab_root is not None
                else token_file(self.topology.parent)
            )

    def address(self, site: str) -> str:
        if self.lab_root is not None:
            return lab_controllers.listen(site)
        return f"{HTTP_IPS[site]}:{HTTP_PORT}"

    def start(self, site: str, *extra: str, extra_env: dict[str, str] | None = None) -> None:
        log = open(self.dir / f"{site}.log", "ab")  # noqa: SIM115 - the process owns it
        where = netns.enter(self.lab_root, site) if self.lab_root is not None else []
        self.procs[site] = subprocess.Popen(
            [
                *where,
                *lab_controllers.command(
                    site,
                    self.address(site),
                    self.topology,
                    self.token_path,
                    *extra,
                    lab_root=self.lab_root,
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**(self.env or os.environ), **(extra_env or {})},
        )

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`sitectl pause|unpause|ack` against this topology."""
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli.controller", *args, "-c", str(self.topology)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=self.env,
        )

    @property
    def token_path(self) -> Path:
        assert self.token is not None
        return self.token

    def get(self, site: str, path: str) -> str:
        """`path` from the site's controller, with the bearer token."""
        return lab_controllers.get(self.address(site), path, self.token_path).decode()

    def status(self, site: str) -> dict[str, Any]:
        return dict(json.loads(self.get(site, "/status")))

    def leaders(self) -> list[str]:
        found = []
        for site, proc in self.procs.items():
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    if self.status(site).get("leader"):
                        found.append(site)
        return found

    def kill(self, site: str, sig: signal.Signals = signal.SIGKILL) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.procs[site].pid, sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            self.procs[site].wait(timeout=15)

    def log(self, site: str) -> str:
        return (self.dir / f"{site}.log").read_text()

    def stop_all(self) -> None:
        # pytest shows captured output only for a failing test: there, these tails are
        # what explains it (CI keeps nothing else).
        for site in self.procs:
            with contextlib.suppress(OSError):
                tail = self.log(site).splitlines()[-60:]
                print(f"---- controller {site}, last lines ----", *tail, sep="\n")
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def token_file(directory: Path) -> Path:
    """The controllers' bearer token beside their topology (made once, mode 0600)."""
    path = directory / "controller.token"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_hex(32) + "\n")
    return path


@pytest.fixture
def cluster_name(request: pytest.FixtureRequest) -> str:
    return f"t{time.monotonic_ns() % 10**12}"


@pytest.fixture
def topology_file(tmp_path: Path, ensemble: Ensemble, cluster_name: str) -> Path:
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(topology_doc(cluster_name, ensemble.hosts)))
    topo = load_topology(path, check_filesystem=False)
    (tmp_path / "hosts.yml").write_text(render_inventory_text(topo))
    return path


@pytest.fixture
def controllers(tmp_path: Path, topology_file: Path) -> Iterator[Controllers]:
    running = Controllers(tmp_path, topology_file)
    try:
        yield running
    finally:
        running.stop_all()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "wide_ldap_rpo: run the lab's controllers with a 10 min LDAP RPO limit"
    )
