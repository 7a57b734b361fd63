"""Controllers against a real 3-node ZooKeeper: election, a killed leader replaced, a
suspended leader that stops deciding, vantage reports, pause/unpause/ack.

Automatic promotion is off in these topologies (there is no lab to fail over here), so
a leader that would promote says so in its sentence instead of running the engine.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.config import load_topology
from orchestrator.controller.decision import SiteView
from orchestrator.controller.vantage import Freshness, Report
from orchestrator.controller.zkstate import ControllerState
from orchestrator.coordination.paths import ZkPaths
from tests.controller.conftest import ZK_IPS, Controllers, Ensemble, wait_for

pytestmark = pytest.mark.lab
SITECTL = str(Path(sys.executable).with_name("sitectl"))

SUSPENDED = (
    "ZooKeeper session suspended: taking no decision until reconnected and re-verified as leader"
)


def one_leader(controllers: Controllers) -> str:
    leaders = wait_for(
        lambda: (found := controllers.leaders()) and len(found) == 1 and found, "exactly one leader"
    )
    return leaders[0]


def test_three_controllers_elect_one_leader_and_replace_it_when_killed(
    controllers: Controllers, apps: dict
) -> None:
    for site in ("dc1", "dc2", "witness"):
        controllers.start(site)
    first = one_leader(controllers)
    wait_for(
        lambda: (
            controllers.status(first)["decision"]
            == "dc1 up from 3 of 3 vantage points; nothing to do"
        ),
        "all three reporting",
    )
    for site in {"dc1", "dc2", "witness"} - {first}:
        wait_for(
            lambda site=site: (
                controllers.status(site).get("decision")
                == "not the leader: probing and publishing only"
            ),
            f"{site} follows",
        )

    # `sitectl status` names them, the leader and what each sees.
    shown = subprocess.run(
        [SITECTL, "status", "--json", "-c", str(controllers.topology)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    running = {c["site"]: c for c in json.loads(shown.stdout)["controllers"]}
    assert set(running) == {"dc1", "dc2", "witness"}
    assert [site for site, c in running.items() if c["leader"]] == [first]
    assert all(c["sees"]["dc1"] == "up" and "dc2" in c["sees"] for c in running.values()), running
    human = subprocess.run(
        [SITECTL, "status", "-c", str(controllers.topology)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    # The site table: the leader's row names it leader and what it sees.
    row = next(line.split() for line in human.stdout.splitlines() if line.startswith(first))
    assert row[row.index("leader") + 1 :][:3] == ["dc1", "up,", "dc2"], human.stdout

    metrics = controllers.get(first, "/metrics")
    assert "sitectl_controller_leader 1.0" in metrics
    assert 'sitectl_controller_site_down{site="dc1"} 0.0' in metrics
    assert (
        controllers.get(first, "/healthz") == "dc1 up from 3 of 3 vantage points; nothing to do\n"
    )

    controllers.kill(first)

    second = one_leader(controllers)
    assert second != first
    # The dead controller's report lingers until its session expires, but it never
    # changes again: the new leader counts it absent, not as a view.
    wait_for(
        lambda: (
            controllers.status(second)["decision"]
            == f"dc1 up from 2 of 3 vantage points ({first} absent); nothing to do"
        ),
        "the new leader decides without the dead one",
    )


def test_a_suspended_leader_stops_deciding_until_reverified(
    controllers: Controllers, apps: dict, ensemble: Ensemble
) -> None:
    for site in ("dc1", "dc2", "witness"):
        controllers.start(site)
    leader = one_leader(controllers)
    wait_for(
        lambda: (
            controllers.status(leader)["decision"]
            == "dc1 up from 3 of 3 vantage points; nothing to do"
        ),
        "all three reporting",
    )
    frozen = ZK_IPS[:2]
    try:
        for ip in frozen:  # no quorum: every client is dropped and stays SUSPENDED
            ensemble.signal(ip, signal.SIGSTOP)
        wait_for(
            lambda: controllers.status(leader)["decision"] == SUSPENDED, "the leader stands by"
        )
        status = controllers.status(leader)
        assert status["leader"] is False and status["action"] == "stand-by"
        apps["dc1"].down()  # the outage it must not act on while suspended
        wait_for(
            lambda: controllers.status(leader)["vantage"]["sites"]["dc1"]["streak"] >= 3,
            "the leader's own probes see dc1 down",
        )
        assert controllers.status(leader)["decision"] == SUSPENDED
        assert controllers.leaders() == []
    finally:
        for ip in frozen:
            ensemble.signal(ip, signal.SIGCONT)
    back = one_leader(controllers)
    held = re.compile(
        r"dc1 down for \d+ probes from 3 of 3 vantage points; automatic promotion "
        r"is off in the policy: a person decides \(`sitectl failover --to dc2`\)"
    )
    wait_for(
        lambda: held.fullmatch(controllers.status(back)["decision"]),
        "decisions again once re-verified, on all three views",
    )


def test_flaps_shorter_than_the_threshold_never_reach_a_majority(
    controllers: Controllers, apps: dict
) -> None:
    for site in ("dc1", "dc2", "witness"):
        controllers.start(site)
    leader = one_leader(controllers)
    wait_for(
        lambda: (
            controllers.status(leader)["decision"]
            == "dc1 up from 3 of 3 vantage points; nothing to do"
        ),
        "all three reporting",
    )
    for _ in range(5):  # down for about one probe interval (0.5 s), then back
        apps["dc1"].down()
        time.sleep(0.5)
        apps["dc1"].up()
        time.sleep(1.5)
    assert "dc1 down for" not in controllers.log(leader)
    assert "dc1 down from" in controllers.log(leader)  # it did see the flaps


def test_vantage_reports_are_published_and_read_back(ensemble: Ensemble, topology_file) -> None:
    topo = load_topology(topology_file)
    paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
    a, b = ensemble.client(), ensemble.client()
    try:
        mine, theirs = ControllerState(a, paths), ControllerState(b, paths)
        report = Report("dc2", "dc1", 1, 1.0, 0.1, {"dc1": SiteView("down", 1, "refused")})
        assert mine.publish("dc2", report.to_json())
        # One site, one publisher: another session may not overwrite dc2's view.
        assert not theirs.publish("dc2", Report("dc2", "dc1", 9, 2.0, 0.1, {}).to_json())

        freshness = Freshness(clock=iter([10.0, 11.0, 12.0]).__next__)
        first = freshness.views(theirs.vantage_reports())
        assert [(v.vantage, v.age, v.sites["dc1"]) for v in first] == [
            ("dc2", None, SiteView("down", 1, "refused"))
        ]
        assert mine.publish(
            "dc2", Report("dc2", "dc1", 2, 2.0, 0.1, {"dc1": SiteView("down", 2)}).to_json()
        )
        second = freshness.views(theirs.vantage_reports())
        assert [(v.age, v.sites["dc1"].streak) for v in second] == [(0.0, 2)]
        assert [v.age for v in freshness.views(theirs.vantage_reports())] == [1.0]

        a.stop()  # the ephemeral report dies with its session
        assert theirs.vantage_reports() == []
    finally:
        a.stop(), b.stop()


def cli(topology_file, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.controller", *args, "-c", str(topology_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_pause_unpause_and_ack(ensemble: Ensemble, topology_file) -> None:
    topo = load_topology(topology_file)
    paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
    client = ensemble.client()
    try:
        state = ControllerState(client, paths)
        paused = cli(topology_file, "pause", "--reason", "CHG-42 storage firmware")
        assert paused.returncode == 0, paused.stderr
        assert paused.stdout.startswith("automatic promotion paused: CHG-42 storage firmware — by ")
        assert client.get(paths.paused)[0].decode().startswith("CHG-42 storage firmware — by ")

        assert cli(topology_file, "unpause").stdout == "automatic promotion unpaused\n"
        assert client.exists(paths.paused) is None
        assert cli(topology_file, "unpause").stdout == "automation was not paused\n"

        assert cli(topology_file, "ack").stdout == "no automatic failover to acknowledge\n"
        last = state.record_automatic("dc2", 1_800_000_000.0)
        acked = cli(topology_file, "ack")
        assert acked.stdout == (
            f"acknowledged automatic failover {last.id} to dc2: another "
            "automatic failover may run within the block period\n"
        )
        assert state.acknowledged() == last.id
        newer = state.record_automatic("dc2", 1_800_000_100.0)
        assert state.acknowledged() != newer.id  # an ack covers one failover, not the next
    finally:
        client.stop()
