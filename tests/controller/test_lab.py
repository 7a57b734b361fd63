"""Issue 6 on the real lab: three controllers (dc1, dc2, witness) and the faults they
must survive. Each scenario leaves the lab as it found it: dc1 active, mirrored to dc2.

The controllers run a copy of the lab's topology with automatic promotion on (the lab's
own file keeps it off, so no other test is ever surprised by a controller).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.audit import AuditLog
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.lab import layout, procs
from orchestrator.lab import state as lab_state
from tests.conftest import LabHandle
from tests.controller.conftest import Controllers, wait_for
from tests.controller.scenarios import (
    automatic_failover_succeeded,
    automatic_operations,
    canaries_settled,
    controller_topology,
)
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab

PROMOTION = re.compile(
    r"dc1 down for \d+ probes from [23] of 3 vantage points; dc2 ready \(.*\); starting "
    r"automatic failover to dc2"
)
SUSPENDED = (
    "ZooKeeper session suspended: taking no decision until reconnected and re-verified as leader"
)


@pytest.fixture(scope="module")
def cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


@pytest.fixture
def lab_controllers(
    cluster: Cluster, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Controllers]:
    # The loss the readiness gate can bound after dc1 dies grows with every second it
    # is gone (it cannot tell a dead site from one still writing behind a partition), and
    # detection alone takes 3 probes. The lab's 10 s LDAP limit leaves too little for
    # that on a busy 2-core CI machine (7.8 s was seen with the machine loaded; CI
    # never promoted once, its gate most likely refusing), so the controllers run
    # with 30 s. A scenario that holds promotion on purpose (pause) marks a wider limit.
    wide = request.node.get_closest_marker("wide_ldap_rpo")
    topology = (
        controller_topology(cluster, "controllers-wide-rpo", ldap="10m")
        if wide
        else controller_topology(cluster, "controllers", ldap="30s")
    )
    running = Controllers(tmp_path, topology, env=cluster.env(), lab_root=cluster.lab.state_dir)
    try:
        yield running
    finally:
        running.stop_all()
        if cluster.at_home():
            _forget_automation(cluster)
        else:
            # A failover rightly leaves dc2 active and dc1's application down: a new lab
            # is the quick way home (the way back is a scenario of tests/engine).
            cluster.lab.renew()
        cluster.assert_protected("dc1")


def _forget_automation(cluster: Cluster) -> None:
    """Each scenario starts without a block period, an ack or a pause left by another."""
    topo = cluster.topology
    root = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster).root
    client = connect(topo, timeout=30)  # sitectl's digest identity: its znodes are ACLed
    try:
        for path in (f"{root}/controller/automatic", f"{root}/controller/ack", f"{root}/paused"):
            if client.exists(path):
                client.delete(path)
    finally:
        client.stop()
        client.close()


def start_all(controllers: Controllers, leader: str = "witness") -> None:
    """Start the three, `leader` first so it wins the election, and wait until the
    leader decides on all three views."""
    controllers.start(leader)
    wait_for(lambda: controllers.leaders() == [leader], f"{leader} leads")
    for site in ("dc1", "dc2", "witness"):
        if site != leader:
            controllers.start(site)
    wait_for(
        lambda: (
            controllers.status(leader)["decision"]
            == "dc1 up from 3 of 3 vantage points; nothing to do"
        ),
        "all three reporting",
        within=60,
    )
    # The readiness gate bounds what a lost site takes with it by the leader's canaries:
    # losing dc1 before the first one has replicated would leave that bound unknown.
    wait_for(
        lambda: controllers.status(leader).get("canary_problems") == [],
        "the leader's canaries written",
        within=60,
    )


def flap(lab: LabHandle, site: str, seconds: float) -> float:
    """Hang every server of `site` but its ZooKeeper node for `seconds`, then let them
    go on; returns how long they were hung. The same SIGSTOP/SIGCONT as `lab
    pause-site`/`heal-site`, without the CLI's start-up and readiness waits, which alone
    last longer than the threshold. ZooKeeper is left running: a controller whose session
    sits on the hung node would neither publish nor read a probe until the flap is over,
    so whether a flap is seen would depend on which node each session picked (the
    loss of a ZooKeeper node has scenarios of its own: R2, R3)."""
    components = [c for c in lab_state.load(lab.state_dir).of_site(site) if c.kind != "zookeeper"]
    began = time.monotonic()
    procs.signal_groups(components, signal.SIGSTOP)
    time.sleep(seconds)
    procs.signal_groups(components, signal.SIGCONT)
    hung = time.monotonic() - began
    time.sleep(3 * seconds)  # up long enough for every streak to reset
    return hung


def lose_dc1(cluster: Cluster, controllers: Controllers) -> None:
    """The whole of dc1 goes: its controller with it. Not before the leader's canaries
    have settled (`canaries_settled`)."""
    canaries_settled(controllers)
    controllers.kill("dc1")
    cluster.lab.ok("kill-site", "dc1")


def assert_dc2_serves(cluster: Cluster) -> None:
    assert cluster.status()["active_site"] == "dc2"
    # dc2's volume is mounted. dc1's may still be: a failover skips the lost site's
    # unmount, and in the lab the "lost" site shares this machine's kernel.
    assert "dc2" in cluster.mounted_sites()
    assert set(cluster.app_answers("dc2").values()) == {"up"}
    answers = cluster.dns_answers_alive()
    assert answers and all(v == {layout.service_ip("dc2")} for v in answers.values()), answers


def test_site_loss_promotes_the_standby(cluster: Cluster, lab_controllers: Controllers) -> None:
    cluster.assert_active("dc1")
    before = len(automatic_operations(cluster))
    start_all(lab_controllers)

    lose_dc1(cluster, lab_controllers)

    automatic_failover_succeeded(cluster)
    assert_dc2_serves(cluster)
    started = automatic_operations(cluster)[before:]
    assert len(started) == 1, started
    assert PROMOTION.fullmatch(started[0]["reason"]), started[0]["reason"]
    log = lab_controllers.log("witness")
    assert started[0]["reason"] in log
    assert f"automatic failover {started[0]['op']} succeeded: dc2 is active" in log
    # Afterwards dc2 serves and is healthy: nothing more to do, and never back to dc1.
    wait_for(
        lambda: (
            lab_controllers.status("witness")["decision"]
            == "dc2 up from 2 of 3 vantage points (dc1 absent); nothing to do"
        ),
        "settled",
    )


def test_flaps_shorter_than_the_threshold_never_promote(
    cluster: Cluster, lab_controllers: Controllers
) -> None:
    cluster.assert_active("dc1")
    before = len(automatic_operations(cluster))
    start_all(lab_controllers)
    interval = cluster.topology.policy.probe_interval
    # Hung for just over two probe intervals (the probe timeout is one): a probe that
    # starts in its first 1.2 intervals times out inside it, and one always does; the
    # third in a row starts too late to, so no streak reaches the three consecutive
    # probes a promotion needs.
    outages = [flap(cluster.lab, "dc1", 2.2 * interval) for _ in range(5)]
    # A precondition, not a measurement of sitectl: a flap as long as the threshold
    # would be a real outage, and promoting on it would be right.
    threshold = cluster.topology.policy.consecutive_failures * interval
    assert max(outages) < threshold, f"the flaps lasted {outages} s"
    wait_for(
        lambda: (
            lab_controllers.status("witness")["decision"]
            == "dc1 up from 3 of 3 vantage points; nothing to do"
        ),
        "all three back",
    )
    log = lab_controllers.log("witness")
    assert "dc1 down from" in log or "dc1 degraded from" in log, "the flaps were seen"
    assert "dc1 down for" not in log, "never confirmed by a majority"
    assert len(automatic_operations(cluster)) == before
    cluster.assert_active("dc1")


def test_dc2_cut_off_from_zookeeper_never_promotes(
    cluster: Cluster, lab_controllers: Controllers
) -> None:
    """R3: dc2, leading, is cut off at the WAN from dc1 and the witness (ops still sees
    it): its controller and its ZooKeeper node lose the others alike. It stands by and
    never leads again while cut; the majority elects another leader, and nobody promotes."""
    cluster.assert_active("dc1")
    before = len(automatic_operations(cluster))
    cut = False
    try:
        lab_controllers.start("dc2")
        wait_for(lambda: lab_controllers.leaders() == ["dc2"], "dc2 leads")
        lab_controllers.start("witness")
        lab_controllers.start("dc1")
        wait_for(
            lambda: (
                lab_controllers.status("dc2")["decision"]
                == "dc1 up from 3 of 3 vantage points; nothing to do"
            ),
            "all three reporting",
            within=60,
        )

        cluster.lab.ok("partition", "dc2", "--from", "dc1,witness")
        cut = True

        wait_for(
            lambda: lab_controllers.status("dc2")["decision"] == SUSPENDED,
            "the cut-off leader stands by",
        )
        successor = wait_for(
            lambda: [s for s in lab_controllers.leaders() if s != "dc2"], "another controller leads"
        )[0]
        wait_for(
            lambda: (
                lab_controllers.status(successor)["decision"]
                == "dc1 up from 2 of 3 vantage points (dc2 absent); nothing to do"
            ),
            "the successor counts dc2 absent",
        )
        # Several session timeouts cut off: dc2 never leads, nobody promotes.
        deadline = time.monotonic() + 4 * cluster.topology.zookeeper.session_timeout
        while time.monotonic() < deadline:
            status = lab_controllers.status("dc2")
            assert status["leader"] is False and status["action"] == "stand-by", status
            time.sleep(0.5)

        cluster.lab.ok("heal-network")
        cut = False

        # Back, its session expired: it follows and does not pick up where it was.
        wait_for(
            lambda: (
                lab_controllers.status("dc2")["decision"]
                == "not the leader: probing and publishing only"
            ),
            "dc2 follows",
            within=60,
        )
        assert lab_controllers.leaders() == [successor]
        assert len(automatic_operations(cluster)) == before
        cluster.assert_active("dc1")
    finally:
        if cut:  # never leave the lab cut for the next scenario
            cluster.lab.ok("heal-network")


def test_leader_killed_mid_failover_is_resumed(
    cluster: Cluster, lab_controllers: Controllers
) -> None:
    cluster.assert_active("dc1")
    before = len(automatic_operations(cluster))
    # The witness leads and dies (SIGKILL, by the engine's fault hook) half-way through.
    plan = json.loads(
        cluster.sitectl(
            "plan", "--to", "dc2", "--mode", "failover", "--unreachable", "dc1", "--json"
        ).stdout
    )
    half = sum(len(g["steps"]) for g in plan["groups"]) // 2
    lab_controllers.start("witness", extra_env={"SITECTL_FAULT_KILL_AFTER_STEPS": str(half)})
    wait_for(lambda: lab_controllers.leaders() == ["witness"], "the witness leads")
    lab_controllers.start("dc2")
    lab_controllers.start("dc1")
    wait_for(
        lambda: (
            lab_controllers.status("witness")["decision"]
            == "dc1 up from 3 of 3 vantage points; nothing to do"
        ),
        "all three reporting",
        within=60,
    )

    lose_dc1(cluster, lab_controllers)

    lab_controllers.procs["witness"].wait(timeout=180)
    assert lab_controllers.procs["witness"].returncode == -signal.SIGKILL
    started = automatic_operations(cluster)[before:]
    assert len(started) == 1, started
    op_id = started[0]["op"]
    wait_for(
        lambda: cluster.status()["operation"]["status"] == "succeeded",
        "the next leader finished it",
        within=180,
    )
    assert cluster.status()["operation"]["id"] == op_id, "resumed, not started again"
    assert len(automatic_operations(cluster)) == before + 1
    log = lab_controllers.log("dc2")
    assert (
        f"operation {op_id} (failover dc1→dc2) was left running by a leader that is "
        "gone: resuming it from its checkpoints"
    ) in log
    assert f"automatic failover {op_id} succeeded: dc2 is active" in log
    assert_dc2_serves(cluster)
    audit = [
        e
        for e in AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
        if e.get("op") == op_id
    ]
    finished = [e["step"] for e in audit if e["event"] in ("step.done", "step.skipped")]
    assert len(finished) == len(set(finished)), "a step finished twice"


@pytest.mark.wide_ldap_rpo
def test_pause_holds_promotion_and_unpause_releases_it(
    cluster: Cluster, lab_controllers: Controllers
) -> None:
    cluster.assert_active("dc1")
    before = len(automatic_operations(cluster))
    paused = lab_controllers.cli("pause", "--reason", "scenario maintenance")
    assert paused.returncode == 0, paused.stderr
    start_all(lab_controllers)

    lose_dc1(cluster, lab_controllers)

    held = re.compile(
        r"dc1 down for \d+ probes from 2 of 3 vantage points; automation is "
        r"paused \(scenario maintenance — by .*\): no automatic failover"
    )
    wait_for(
        lambda: held.fullmatch(lab_controllers.status("witness")["decision"]), "held while paused"
    )
    time.sleep(3 * cluster.topology.policy.probe_interval)  # it keeps holding
    assert held.fullmatch(lab_controllers.status("witness")["decision"])
    assert len(automatic_operations(cluster)) == before
    assert cluster.status()["active_site"] == "dc1"

    unpaused = lab_controllers.cli("unpause")
    assert unpaused.returncode == 0, unpaused.stderr

    wait_for(
        lambda: (
            (op := cluster.status()["operation"])
            and op["automatic"]
            and op["status"] == "succeeded"
        ),
        "promoted once unpaused",
        within=180,
    )
    assert_dc2_serves(cluster)
    assert len(automatic_operations(cluster)) == before + 1
