"""A controller against znodes holding anything at all (issue 19, finding 2): whoever can
write under sitectl's ZooKeeper root (without `zookeeper.auth`, anyone who reaches the
ensemble) must not crash-loop the controllers. Hypothesis writes hostile bytes and JSON
into each node a controller reads, against a real ZooKeeper ensemble; every leader cycle
still ends in one decision, told in one sentence, and never in a failover or a resume,
and the vantage thread's probe cycle and `/status` survive too."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kazoo.client import KazooClient

from orchestrator.config import load_topology
from orchestrator.controller.daemon import Controller
from orchestrator.controller.decision import Action
from orchestrator.coordination.ticketstore import TicketStore
from orchestrator.errors import SitectlError
from tests.controller.conftest import Ensemble

pytestmark = pytest.mark.lab

FIELDS = ("id", "at", "to_site", "holder", "epoch", "renewed_at", "ttl", "sites", "status")
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)


def encoded(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


HOSTILE = st.binary(max_size=120) | JSON.map(encoded)


@pytest.fixture
def controller(ensemble: Ensemble, topology_file: Path) -> Iterator[Controller]:
    topo = load_topology(topology_file, check_filesystem=False)
    client = KazooClient(hosts=ensemble.hosts, timeout=4)
    client.start(timeout=10)
    made = Controller(topo, "dc1", client, canaries=False)
    assert made.leadership.contend(timeout=10)
    try:
        yield made
    finally:
        made.leadership.resign()
        client.stop()
        client.close()


def nodes(controller: Controller) -> dict[str, str]:
    paths, state = controller.paths, controller.state
    return {
        "active-site": paths.active_site,
        "paused": paths.paused,
        "current": paths.current,
        "operation": paths.operation("op-1"),
        "vantage": f"{state.vantage_path}/dc2/report",
        "member": f"{state.members_path}/dc2",
        "automatic": state.automatic_path,
        "ack": state.ack_path,
        "ticket": paths.ticket,
    }


def put(client: KazooClient, path: str, raw: bytes) -> None:
    if client.exists(path):
        client.set(path, raw)
    else:
        client.create(path, raw, makepath=True)


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    node=st.sampled_from(
        sorted(
            (
                "active-site",
                "paused",
                "current",
                "operation",
                "vantage",
                "member",
                "automatic",
                "ack",
                "ticket",
            )
        )
    ),
    raw=HOSTILE,
)
def test_no_znode_content_crashes_a_cycle(controller: Controller, node: str, raw: bytes) -> None:
    client = controller.client
    where = nodes(controller)
    put(client, where[node], raw)
    if node == "operation":
        put(client, where["current"], b"op-1")
    try:
        decision = controller.cycle(True)
        assert decision.action not in (Action.FAILOVER, Action.RESUME), decision.sentence
        assert "\n" not in decision.sentence and len(decision.sentence) < 600
        controller._probe_once()  # the vantage thread's cycle, on the same data
        running = controller.state.running(controller.leadership.leader())
        json.dumps(running)  # what /status serves must still be JSON
        try:
            ticket = TicketStore(client, controller.paths).read()
        except SitectlError:
            ticket = None  # refused, in our own words
        if ticket is not None:
            assert math.isfinite(ticket[0].expires_at)
    finally:
        for path in where.values():
            if client.exists(path):
                client.delete(path, recursive=True)
