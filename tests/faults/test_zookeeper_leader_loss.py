"""R2 on the lab: the ZooKeeper ensemble's leader node is SIGKILLed mid-switchover.

The ensemble elects another leader within a couple of seconds; sitectl's session lives
on (4 s timeout) through the election. The operation either carries on, or stops at a
safe point saying so, and `sitectl resume` finishes it. Either way the service ends up
moved exactly once: no step applied twice, every checkpoint written. (That nothing is
written while the session is SUSPENDED is tests/coordination/test_lease.py's
`test_no_side_effect_while_suspended_and_reverified_after`, against frozen nodes.)
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess

import pytest

from orchestrator.audit import AuditLog
from orchestrator.lab import layout, procs
from tests.conftest import eventually
from tests.engine.conftest import SITECTL, Cluster

pytestmark = pytest.mark.lab

KILL_WHEN_RUNNING = "unmount/dc1/mailstore"



def zookeeper_leader() -> str:
    """The site whose ZooKeeper node leads the ensemble now (four-letter word `srvr`)."""
    for site in layout.SITES:
        try:
            with socket.create_connection(
                (layout.service_ip(site), layout.ZK_CLIENT_PORT), timeout=2
            ) as sock:
                sock.sendall(b"srvr")
                if "Mode: leader" in sock.recv(4096).decode():
                    return site
        except OSError:
            continue
    raise AssertionError("no ZooKeeper node says it leads")


def _reached(status: dict, step: str, index: int) -> bool:
    """The switchover is still in progress and `step` has started (host steps take
    under a second when they share a playbook run: a poll can miss one running)."""
    op = status["operation"] or {}
    return bool(op.get("in_progress")) and (
        step in op.get("running_steps", []) or op.get("steps_finished", 0) > index
    )


def test_the_zookeeper_leader_killed_mid_switchover(cluster: Cluster) -> None:
    plan = json.loads(cluster.sitectl("plan", "--to", "dc2", "--json").stdout)
    order = [s["id"] for g in plan["groups"] for s in g["steps"]]
    before = cluster.send_mail("dc1")
    cluster.wait_delivered("dc1", before)
    run = subprocess.Popen(
        [SITECTL, "switchover", "--to", "dc2", "--yes", "--reason", "R2 ZooKeeper leader lost"],
        env=cluster.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    victim = zookeeper_leader()
    try:
        eventually(
            lambda: _reached(cluster.status(), KILL_WHEN_RUNNING, order.index(KILL_WHEN_RUNNING)),
            f"{KILL_WHEN_RUNNING} started, the switchover still in progress",
            within=120,
        )
        node = cluster.lab.state().components[f"{victim}-zookeeper"]
        assert procs.signal_group(node, signal.SIGKILL)
        _, stderr = run.communicate(timeout=300)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert zookeeper_leader() != victim, "the ensemble elected another leader"

    resumed = 0
    if run.returncode != 0:
        # A safe stop, which says where things stand and how to go on.
        assert "stopped:" in stderr or "unavailable:" in stderr, stderr
        finish = cluster.sitectl("resume", timeout=300)
        assert finish.returncode == 0, finish.stderr
        resumed = 1
    cluster.lab.ok("heal-site", victim)

    op = cluster.status()["operation"]
    assert op["status"] == "succeeded", op
    cluster.assert_active("dc2")
    assert cluster.mail_count("dc2", before) == 1
    audit = [
        e
        for e in AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
        if e.get("op") == op["id"]
    ]
    applied = [
        e["step"]
        for e in audit
        if e["event"] == "step.done" and e["detail"] == "applied and verified"
    ]
    assert len(applied) == len(set(applied)), "a step was applied twice"
    assert len([e for e in audit if e["event"] == "operation.resumed"]) == resumed
