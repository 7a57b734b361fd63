"""The ZooKeeper check reports our own session: the caller's kazoo client, or "no session".

No ensemble is needed: a client's `state` is what kazoo keeps current from its
connection thread, so an object with that attribute stands in for one; the session
`sitectl health` opens itself is tried against a port where nothing listens.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest

from orchestrator.checks import CheckResult, Status, zookeeper
from orchestrator.checks.sweep import summarize
from tests.checks.topologies import topology


@dataclass
class Client:
    state: str  # as kazoo.client.KazooClient.state: CONNECTED, SUSPENDED or LOST


def session_result(timeout: float = 1.0) -> CheckResult:
    (check,) = [c for c in zookeeper.checks(topology(), timeout) if c.target == "our session"]
    assert check.site is None  # cluster-wide: the session is with the whole ensemble
    return check.run(timeout)


def test_without_a_session_the_check_says_so_and_is_not_a_fault() -> None:
    result = session_result()
    assert result.status is Status.OK
    assert result.reason == "no session: this process holds no ZooKeeper session"


@pytest.mark.parametrize(
    ("state", "status", "words", "connected"),
    [
        ("CONNECTED", Status.OK, "", 1.0),
        ("SUSPENDED", Status.DEGRADED, "suspended: the connection is lost", 0.0),
        ("LOST", Status.DOWN, "lost: expired, closed or never established", 0.0),
    ],
)
def test_a_reported_client_state_is_judged(
    state: str, status: Status, words: str, connected: float
) -> None:
    client = Client(state)
    with zookeeper.reporting_client(client):
        result = session_result()
    assert result.status is status and words in result.reason, result.reason
    assert result.figures == {"connected": connected}
    assert session_result().reason.startswith("no session")  # gone with the block


def test_the_state_is_read_at_each_sweep_and_the_latest_report_counts() -> None:
    outer, inner = Client("CONNECTED"), Client("SUSPENDED")
    with zookeeper.reporting_client(outer):
        with zookeeper.reporting_client(inner):
            assert session_result().status is Status.DEGRADED
            inner.state = "CONNECTED"  # kazoo reconnected within the session timeout
            assert session_result().status is Status.OK
        outer.state = "LOST"
        assert session_result().status is Status.DOWN


@pytest.mark.parametrize(
    ("found", "status", "words"),
    [
        (("CONNECTING", ""), Status.DOWN, "no session established within 2 s"),
        (("LOST", "ZooKeeper (x) did not answer within 4 s"), Status.DOWN, ": ZooKeeper (x)"),
        (("WEIRD\nSTATE", ""), Status.DEGRADED, "unknown state 'WEIRD STATE'"),
    ],
)
def test_judge_session(found: tuple[str, str], status: Status, words: str) -> None:
    got, reason, _figures = zookeeper.judge_session(found, 2.0)
    assert got is status and words in reason, reason


def test_the_session_is_not_counted_as_a_quorum_member() -> None:
    nodes = [
        CheckResult("zookeeper", site, f"127.0.{n}.1:2181", Status.OK, "", {"leader": lead})
        for site, n, lead in (("dc1", 1, 1.0), ("dc2", 2, 0.0), ("witness", 3, 0.0))
    ]
    session = CheckResult("zookeeper", None, "our session", Status.DOWN, "lost", {})
    out = summarize(topology(), [*nodes, session])
    quorum = next(r for r in out if r.target == "quorum")
    assert quorum.status is Status.OK and quorum.figures["members"] == 3.0


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_our_own_session_to_a_silent_ensemble_is_down_with_the_reason() -> None:
    port = closed_port()
    topo = topology(
        zookeeper={"hosts": [{"address": f"127.0.0.1:{port}", "site": "dc1"}], "session_timeout": 1}
    )
    with zookeeper.own_session(topo) as session:
        early = session_result(timeout=0.2)
        assert early.status is Status.DOWN
        assert early.reason == "no session established within 0.2 s"
        # connect() gives up after the session timeout (1 s): the reason then says why.
        state, detail = session.state(10.0)
        later = session_result()
    assert state == "LOST" and "did not answer within 1 s" in detail, detail
    assert later.status is Status.DOWN and f"127.0.0.1:{port}" in later.reason, later.reason
    assert session_result().reason.startswith("no session")
