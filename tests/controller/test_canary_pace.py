"""How often the leader writes each kind of canary (controller/canary.py): a tenth of
that kind's own RPO limit, so the bound the readiness gate computes from a canary's age
keeps the same margin under each limit; and a kind whose write failed is tried again at
the next tick rather than a whole interval later."""

from __future__ import annotations

from typing import Any

from orchestrator.config import Topology
from orchestrator.controller.canary import Canaries, canary_interval, intervals
from orchestrator.controller.fence import LeaderFence
from tests.checks import topologies

LAB_LIMITS = {"volume": 30, "ldap": 10, "object_store": 60}  # the lab's, in seconds


def topology(probe_interval: float = 1.0, **rpo_limits: float) -> Topology:
    return topologies.topology(
        policy={"probe_interval": probe_interval, "rpo_limits": rpo_limits or LAB_LIMITS}
    )


def test_each_kind_at_a_tenth_of_its_own_limit() -> None:
    topo = topology()
    assert intervals(topo) == {"ldap": 1.0, "object_store": 6.0}
    assert canary_interval(topo) == 1.0


def test_never_faster_than_the_probe_interval() -> None:
    topo = topology(probe_interval=2.0, volume=1, ldap=5, object_store=60)
    assert intervals(topo) == {"ldap": 2.0, "object_store": 6.0}


class Writes:
    def __init__(self) -> None:
        self.log: list[tuple[float, str]] = []
        self.failing: set[str] = set()
        self.now = 0.0

    def writer(self, kind: str) -> Any:
        def write(*_: Any) -> list[str]:
            self.log.append((self.now, kind))
            return [f"{kind} canary failed"] if kind in self.failing else []

        return write


def test_the_object_store_canary_is_written_at_its_own_pace() -> None:
    topo = topology()
    writes = Writes()
    canaries = Canaries(
        topo,
        clock=lambda: writes.now,
        writers={k: writes.writer(k) for k in ("ldap", "object_store")},
    )
    fence = LeaderFence(7)
    for tick in range(13):
        writes.now = tick * canaries.tick
        assert canaries.write(topo, "dc1", 1.0, fence) == []
    objects = [t for t, kind in writes.log if kind == "object_store"]
    assert objects == [0.0, 6.0, 12.0]
    assert [t for t, kind in writes.log if kind == "ldap"] == [float(t) for t in range(13)]


def test_a_failed_canary_is_written_again_at_the_next_tick() -> None:
    topo = topology()
    writes = Writes()
    canaries = Canaries(
        topo,
        clock=lambda: writes.now,
        writers={k: writes.writer(k) for k in ("ldap", "object_store")},
    )
    fence = LeaderFence(7)
    writes.failing.add("object_store")
    assert canaries.write(topo, "dc1", 1.0, fence) == ["object_store canary failed"]
    writes.failing.clear()
    writes.now = 1.0
    assert canaries.write(topo, "dc1", 1.0, fence) == []
    assert [t for t, kind in writes.log if kind == "object_store"] == [0.0, 1.0]
