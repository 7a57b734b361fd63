"""A long-running controller leaks nothing per ZooKeeper session, against the controller
tests' real 3-node ensemble: the leader's watches of the vantage reports are set once
for its whole life (kazoo sets them again on each new session), and a soak of 50
forced session expiries (kazoo's way: a second client with the same session id and
password, closed) leaves its threads, ZooKeeper watches (the servers' own count, and
kazoo's registry) and file descriptors where they were.

The controller runs in this process, as `sitectl controller run` runs it (its HTTP
endpoint included), since only the session's owner knows its password.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kazoo.client import KazooClient, KazooState

from orchestrator.checks.zookeeper import reporting_client
from orchestrator.config import Topology, load_topology
from orchestrator.controller.daemon import Controller
from orchestrator.controller.http import Endpoint, access_of, serve
from orchestrator.coordination.client import connect
from tests.controller.conftest import App, Ensemble, token_file, wait_for
from tests.zkensemble import PORT

pytestmark = pytest.mark.lab

EXPIRIES = 50


def new_session(ensemble: Ensemble, client: KazooClient) -> int:
    """Expire `client`'s session and wait for the next one; its id."""
    old = client.client_id[0]
    ensemble.expire(client)
    return int(
        wait_for(
            lambda: (
                client.state == KazooState.CONNECTED
                and client.client_id
                and client.client_id[0] != old
                and client.client_id[0]
            ),
            "a new session after the expiry",
        )
    )


def report_paths(controller: Controller) -> list[str]:
    return [f"{controller.state.vantage_path}/{site}/report" for site in controller.topo.sites]


def test_the_report_watches_are_set_once_not_once_per_session(
    ensemble: Ensemble, topology_file: Path
) -> None:
    topo = load_topology(topology_file, check_filesystem=False)
    client = connect(topo, timeout=15)
    try:
        controller = Controller(topo, "witness", client, canaries=False)
        paths = report_paths(controller)
        listeners = len(client.state_listeners)
        controller._watch_reports()  # what each cycle as leader does
        for _ in range(5):
            new_session(ensemble, client)
            controller._watch_reports()
        wait_for(
            lambda: all(len(client._data_watchers.get(p, ())) == 1 for p in paths),
            "one watcher per vantage report, set again on the new session",
            within=10,
        )
        assert len(client.state_listeners) == listeners + len(paths)
    finally:
        client.stop()
        client.close()


# ---- the soak ------------------------------------------------------------------------


def zk_watches(ensemble: Ensemble) -> int:
    """Watches the ensemble holds, by each server's own count (`mntr`): a session's
    watches live on the server it is connected to."""
    total = 0
    for ip in ensemble.ips:
        with socket.create_connection((ip, PORT), timeout=2) as sock:
            sock.sendall(b"mntr")
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        (line,) = [x for x in answer.decode().splitlines() if x.startswith("zk_watch_count")]
        total += int(line.split()[1])
    return total


def kazoo_watchers(client: KazooClient) -> int:
    return sum(len(w) for w in client._data_watchers.values()) + sum(
        len(w) for w in client._child_watchers.values()
    )


def threads() -> int:
    return len(os.listdir("/proc/self/task"))


def fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@dataclass
class Running:
    topo: Topology
    client: KazooClient
    controller: Controller
    endpoint: Endpoint
    token: Path

    def get(self, path: str) -> bytes:
        host, port = self.endpoint.server_address
        request = urllib.request.Request(
            f"http://{host}:{port}{path}",
            headers={"Authorization": f"Bearer {self.token.read_text().strip()}"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            return bytes(answer.read())

    def leads_on(self, session: int, since: float) -> bool:
        """It decided as the verified leader, on `session`, after `since`."""
        board = self.controller.board.read()
        return (
            self.client.client_id is not None
            and self.client.client_id[0] == session
            and bool(board.get("leader"))
            and float(board.get("decided_at") or 0) > since
            and all(p in self.client._data_watchers for p in report_paths(self.controller))
        )


@pytest.fixture
def running(ensemble: Ensemble, topology_file: Path, apps: dict[str, App]) -> Iterator[Running]:
    """dc1's controller (the active site's: it renews the site ticket too), with its
    HTTP endpoint behind a token, in this process."""
    del apps  # the sites' listeners: the controller probes them
    topo = load_topology(topology_file, check_filesystem=False)
    token = token_file(topology_file.parent)
    client = connect(topo, timeout=15)
    controller = Controller(topo, "dc1", client)
    endpoint = serve(
        "127.0.0.1",
        0,
        controller.metrics,
        controller.board,
        controller.health,
        access=access_of(token, ("metrics",)),
    )
    loop = threading.Thread(target=_run, args=(controller, client), daemon=True)
    loop.start()
    try:
        yield Running(topo, client, controller, endpoint, token)
    finally:
        controller.stop()
        loop.join(timeout=30)
        endpoint.shutdown()
        client.stop()
        client.close()
    assert not loop.is_alive(), "the controller did not stop"


def _run(controller: Controller, client: KazooClient) -> None:
    with reporting_client(client):
        controller.run()


def test_fifty_session_expiries_leak_no_thread_watch_or_descriptor(
    ensemble: Ensemble, running: Running
) -> None:
    client = running.client
    started = time.monotonic()

    def expire_and_lead_again() -> None:
        since = time.time()
        session = new_session(ensemble, client)
        wait_for(lambda: running.leads_on(session, since), "leading on the new session")
        assert b"sitectl_controller_leader 1.0" in running.get("/metrics")
        assert b'"leader": true' in running.get("/status")

    wait_for(lambda: running.leads_on(client.client_id[0], 0), "leading at first")
    for _ in range(5):  # warm up: every lazily made thread and file exists by now
        expire_and_lead_again()
    settled = _sample(ensemble, client)

    for n in range(EXPIRIES - 5):
        expire_and_lead_again()
        if n == (EXPIRIES - 5) // 2:
            halfway = _sample(ensemble, client)

    # Exact for what the controller keeps per session (a leak of one per expiry would
    # show 45 here); a little room for threads and descriptors that come and go (a
    # kazoo callback thread, a probe's socket) as long as it does not grow.
    wait_for(
        lambda: _flat(settled, _sample(ensemble, client)),
        f"after {EXPIRIES} expiries, as flat as after 5 ({settled}; halfway {halfway})",
        within=20,
    )
    print(f"{EXPIRIES} expiries in {time.monotonic() - started:.0f} s: {_sample(ensemble, client)}")


def _sample(ensemble: Ensemble, client: KazooClient) -> dict[str, int]:
    return {
        "session listeners": len(client.state_listeners),
        "kazoo watchers": kazoo_watchers(client),
        "server watches": zk_watches(ensemble),
        "threads": threads(),
        "fds": fds(),
    }


def _flat(before: dict[str, int], now: dict[str, int]) -> bool:
    exact = ("session listeners", "kazoo watchers", "server watches")
    return all(now[k] == before[k] for k in exact) and (
        now["threads"] <= before["threads"] + 2 and now["fds"] <= before["fds"] + 4
    )
