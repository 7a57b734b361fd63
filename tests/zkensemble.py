"""A private 3-node ZooKeeper ensemble on loopback for tests that freeze, kill and
expire ZooKeeper without disturbing the lab (127.0.1-3.x) or each other: the
coordination tests use 127.0.9.x, the controller tests 127.0.11.x."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kazoo.client import KazooClient

from orchestrator.lab.zookeeper import CLASSPATH, JVM_FLAGS

PORT = 2181


@dataclass
class Ensemble:
    ips: tuple[str, ...]
    procs: dict[str, subprocess.Popen[bytes]]

    @property
    def hosts(self) -> str:
        return ",".join(f"{ip}:{PORT}" for ip in self.ips)

    def signal(self, ip: str, sig: signal.Signals) -> None:
        os.killpg(self.procs[ip].pid, sig)

    def client(self, timeout: float = 4.0) -> KazooClient:
        client = KazooClient(hosts=self.hosts, timeout=timeout)
        client.start(timeout=15)
        return client

    def expire(self, client: KazooClient) -> None:
        """Expire `client`'s session the way ZooKeeper does when a client vanishes:
        a second connection with the same session id closes it."""
        twin = KazooClient(hosts=self.hosts, client_id=client.client_id, timeout=4.0)
        twin.start(timeout=15)
        twin.stop()
        twin.close()


def serving(ip: str) -> bool:
    try:
        with socket.create_connection((ip, PORT), timeout=1) as sock:
            sock.sendall(b"srvr")
            answer = sock.recv(4096).decode()
    except OSError:
        return False
    return "Mode: leader" in answer or "Mode: follower" in answer


@contextlib.contextmanager
def running_ensemble(root: Path, ips: tuple[str, ...]) -> Iterator[Ensemble]:
    """Start three real ZooKeeper nodes (tickTime 500 ms, as the lab) under `root`, wait
    for a quorum, and stop them (thawing frozen ones first) on the way out."""
    servers = "\n".join(f"server.{i}={ip}:2888:3888" for i, ip in enumerate(ips, start=1))
    procs = {}
    for myid, ip in enumerate(ips, start=1):
        data = root / f"zk{myid}"
        data.mkdir()
        (data / "myid").write_text(f"{myid}\n")
        cfg = data / "zoo.cfg"
        cfg.write_text(
            f"tickTime=500\ninitLimit=20\nsyncLimit=5\ndataDir={data}\n"
            f"clientPort={PORT}\nclientPortAddress={ip}\nadmin.enableServer=false\n"
            "4lw.commands.whitelist=srvr,ruok,mntr\nstandaloneEnabled=false\n"
            f"{servers}\n"
        )
        log = open(data / "zk.log", "wb")  # noqa: SIM115 - lives as long as the process
        procs[ip] = subprocess.Popen(
            [
                "java",
                *JVM_FLAGS,
                "-cp",
                CLASSPATH,
                "org.apache.zookeeper.server.quorum.QuorumPeerMain",
                str(cfg),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while not all(serving(ip) for ip in ips):
            assert time.monotonic() < deadline, f"no quorum: see {root}/zk*/zk.log"
            time.sleep(0.2)
        yield Ensemble(ips, procs)
    finally:
        for proc in procs.values():
            for sig in (signal.SIGCONT, signal.SIGTERM):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        for proc in procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
