"""R6: 500 injected flaps → zero false promotions, and a real outage is still detected.

The controllers' whole judgement, without servers: the real `Prober` (streaks) of each
of the three vantage points, the real `Freshness` (stale reports are absent), the real
`decide`, driven one probe interval at a time on a virtual clock. Only the sweep itself
is scripted: what each vantage point's probes of dc1 found at that moment.

Faults injected between and during the flaps, seeded so a failure replays:
- flaps: dc1 unanswering for 1 or 2 probes (the threshold is 3), seen by a random
  subset of vantage points, each with its own delay;
- latency: a vantage point's report reaches ZooKeeper up to 2 intervals late;
- pauses: a vantage point (its controller frozen) stops probing and publishing for up to
  8 intervals, its last report left behind, possibly one that said "down".
The lab runs real flaps too (tests/controller/test_lab.py), five of them: this is the
many-cases complement.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field

import pytest
import yaml

from orchestrator.checks import CheckResult, Status, Sweep
from orchestrator.config import Topology, load_topology
from orchestrator.controller.decision import (
    Action,
    Decision,
    ReadinessView,
    Snapshot,
    Timing,
    decide,
)
from orchestrator.controller.vantage import Freshness, Prober, service_targets
from orchestrator.controller.zkstate import Published
from tests.controller.conftest import topology_doc

VANTAGES = ("dc1", "dc2", "witness")
TIMING = Timing(
    probe_interval=1.0, consecutive_failures=3, automatic_promotion=True, block_period=3600.0
)
FLAPS = 500
LATE = (0, 0, 0, 1, 2)  # how many intervals a report may reach ZooKeeper late
MAX_PAUSE = 8  # intervals a vantage point's controller may stay frozen


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    path = tmp_path_factory.mktemp("flaps") / "topology.yaml"
    doc = topology_doc("flaps", "127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", automatic=True)
    path.write_text(yaml.safe_dump(doc))
    return load_topology(path, check_filesystem=False)


@dataclass
class World:
    """Virtual time in probe intervals, and which vantage points see dc1 down when."""

    topology: Topology
    tick: int = 0
    down_at: dict[str, set[int]] = field(default_factory=lambda: {v: set() for v in VANTAGES})

    def sweeper(self, vantage: str):  # type: ignore[no-untyped-def]
        def sweep(topo: Topology, timeout: float) -> Sweep:
            results = []
            for site in topo.datacenters():
                down = site == "dc1" and self.tick in self.down_at[vantage]
                results += [
                    CheckResult(
                        "application",
                        site,
                        target,
                        Status.DOWN if down else Status.OK,
                        "no answer" if down else "",
                    )
                    for target in service_targets(topo, site)
                ]
            return Sweep(tuple(results), 0.01)

        return sweep


@dataclass
class Cluster:
    world: World
    probers: dict[str, Prober]
    freshness: Freshness
    published: dict[str, Published] = field(default_factory=dict)
    in_flight: dict[str, deque[tuple[int, Published]]] = field(default_factory=dict)
    paused_until: dict[str, int] = field(default_factory=dict)
    zxid: int = 0
    late: int = 0  # reports delivered late so far (proof the faults were on)

    @classmethod
    def start(cls, topology: Topology) -> Cluster:
        world = World(topology)
        probers = {v: Prober(topology, v, world.sweeper(v), clock=lambda: 0.0) for v in VANTAGES}
        return cls(
            world,
            probers,
            Freshness(clock=lambda: float(world.tick)),
            in_flight={v: deque() for v in VANTAGES},
        )

    def cycle(self, rng: random.Random, faults: bool) -> Decision:
        """One probe interval: every vantage point probes and publishes (unless paused,
        or late), then the leader decides on what ZooKeeper holds."""
        tick = self.world.tick
        for vantage, prober in self.probers.items():
            if self.paused_until.get(vantage, -1) >= tick:
                continue
            if faults and rng.random() < 0.01:
                self.paused_until[vantage] = tick + rng.randint(1, MAX_PAUSE)
                continue
            report = prober.probe("dc1", 1.0)
            self.zxid += 1
            delay = rng.choice(LATE) if faults else 0
            self.late += delay > 0
            self.in_flight[vantage].append(
                (tick + delay, Published(vantage, report.to_json(), self.zxid))
            )
        for vantage, queue in self.in_flight.items():
            while queue and queue[0][0] <= tick:
                self.published[vantage] = queue.popleft()[1]
        views = self.freshness.views(list(self.published.values()))
        snapshot = Snapshot(
            connected=True,
            leader=True,
            active_site="dc1",
            home_site="dc1",
            datacenters=("dc1", "dc2"),
            vantage_sites=VANTAGES,
            views=views,
            readiness=ReadinessView(True, "mirror lag 1 s"),
        )
        decision = decide(snapshot, TIMING, now=float(tick))
        self.world.tick += 1
        return decision


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_flaps_never_promote_and_a_real_outage_does(topology: Topology, seed: int) -> None:
    rng = random.Random(seed)
    cluster = Cluster.start(topology)
    world = cluster.world
    at = 10  # a few healthy cycles first, so every vantage point has a fresh report
    for _ in range(FLAPS):
        length = rng.randint(1, TIMING.consecutive_failures - 1)
        seers = rng.sample(VANTAGES, rng.randint(1, len(VANTAGES)))
        for vantage in seers:
            late = rng.randint(0, 1)
            world.down_at[vantage].update(range(at + late, at + late + length))
        # At least one healthy probe between flaps for everyone: back-to-back flaps
        # would be one outage as long as their sum.
        at += length + 2 + rng.randint(0, 3)
    decisions = [cluster.cycle(rng, faults=True) for _ in range(at + 10)]

    promoted = [d.sentence for d in decisions if d.action is Action.FAILOVER]
    assert promoted == [], f"false promotion(s): {promoted[:3]}"
    seen = sum(1 for d in decisions if d.sentence.startswith(("dc1 down from", "dc1 degraded")))
    assert seen > FLAPS // 2, "the flaps were not even seen: the script injected nothing"

    # Then dc1 really goes, for everyone, with the latency and pauses still on (a real
    # outage does not wait for a calm moment): promoted, never before the threshold, and
    # within it plus the longest pause, the latest report and one decision cycle. One
    # vantage point is frozen as dc1 goes (its last report said "up"), the hardest case
    # the pauses make; any pause left over from the flaps carries on.
    outage_from, late = world.tick, cluster.late
    outage = 50
    for vantage in VANTAGES:
        world.down_at[vantage].update(range(outage_from, outage_from + outage))
    frozen = rng.choice(VANTAGES)
    cluster.paused_until[frozen] = max(
        cluster.paused_until.get(frozen, -1), outage_from + MAX_PAUSE - 1
    )
    after: list[Decision] = []
    while len(after) < outage and not (after and after[-1].action is Action.FAILOVER):
        after.append(cluster.cycle(rng, faults=True))
    decision = after[-1]
    assert decision.action is Action.FAILOVER, [d.sentence for d in after[-3:]]
    assert decision.target == "dc2"
    assert re.match(r"dc1 down for \d+ probes from [23] of 3 vantage points", decision.sentence)
    bound = TIMING.consecutive_failures + MAX_PAUSE + max(LATE) + 1
    assert TIMING.consecutive_failures <= len(after) <= bound, [d.sentence for d in after]
    # The seeds are fixed: this holds for them, and says so if a new seed tests no latency.
    assert cluster.late > late, "no report was late during this seed's outage: pick another"


def test_the_simulation_can_fail(topology: Topology) -> None:
    """The control: flaps one probe longer than the threshold, seen by two vantage
    points, are outages, and the same loop promotes on them."""
    rng = random.Random(0)
    cluster = Cluster.start(topology)
    for vantage in ("dc2", "witness"):
        cluster.world.down_at[vantage].update(range(10, 10 + TIMING.consecutive_failures + 1))
    decisions = [cluster.cycle(rng, faults=False) for _ in range(20)]
    assert any(d.action is Action.FAILOVER for d in decisions)
