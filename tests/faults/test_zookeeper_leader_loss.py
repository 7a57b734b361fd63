"""R2 on the lab: the ZooKeeper ensemble's leader node is SIGKILLed mid-switchover.

The ensemble elects another leader within a couple of seconds; sitectl's session lives
on (4 s timeout) through the election. The operation either carries on, or stops at a
safe point saying so, and `sitectl resume` finishes it. Either way the service ends up
moved exactly once: no step applied twice, every checkpoint written. And nothing is
written while the session is SUSPENDED: sitectl runs with its log timed to the
microsecond; the lease's "suspended" and "back" sentences bound each window, and no step
transition (each logged once its fenced checkpoint is in ZooKeeper) falls inside one.
(tests/coordination/test_lease.py's `test_no_side_effect_while_suspended_and_reverified_after`
shows the same against frozen nodes, with a side effect of its own.)
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.audit import AuditLog
from orchestrator.lab import layout, procs
from tests.conftest import eventually
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab

KILL_WHEN_RUNNING = "unmount/dc1/mailstore"
LEASE_LOG = "orchestrator.coordination.lease"
TIMED_LINE = re.compile(r"^(\d+\.\d+) (\S+) (.*)$")


def timed_sitectl(log: Path, *args: str) -> list[str]:
    """The command line of `sitectl ARGS` with every logger's sentences written to `log`,
    each with its time (the CLI itself shows only the engine's, untimed)."""
    code = (
        "import logging, sys\n"
        f"logging.basicConfig(filename={str(log)!r}, level=logging.INFO,"
        " format='%(created).6f %(name)s %(message)s')\n"
        "from orchestrator.cli.main import run\n"
        f"sys.argv = ['sitectl', *{list(args)!r}]\n"
        "run()\n"
    )
    return [sys.executable, "-c", code]


def timed_lines(log: Path) -> list[tuple[float, str, str]]:
    """(time, logger, sentence) of each line of `log`; continuation lines are skipped."""
    found = []
    for line in log.read_text().splitlines() if log.exists() else []:
        match = TIMED_LINE.match(line)
        if match:
            found.append((float(match[1]), match[2], match[3]))
    return found


def suspended_windows(lines: list[tuple[float, str, str]]) -> list[tuple[float, float]]:
    """Each span from "connection suspended" to "connection back" (or the session's loss,
    or the end of the process) as the operation's own lease saw it."""
    windows, opened = [], None
    for at, name, text in lines:
        if name != LEASE_LOG:
            continue
        if text.startswith("ZooKeeper connection suspended") and opened is None:
            opened = at
        elif opened is not None and (
            text.startswith("ZooKeeper connection back") or text.startswith("lost the ZooKeeper")
        ):
            windows.append((opened, at))
            opened = None
    if opened is not None:
        windows.append((opened, float("inf")))
    return windows


def writes(lines: list[tuple[float, str, str]]) -> list[tuple[float, str]]:
    """The engine's step transitions and lease acquisitions: each is logged after its
    fenced write to ZooKeeper went through."""
    return [
        (at, text)
        for at, name, text in lines
        if (name == "sitectl.engine" and text.startswith("step "))
        or (name == LEASE_LOG and text.startswith("took the operation lease"))
    ]


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


def test_the_zookeeper_leader_killed_mid_switchover(cluster: Cluster, tmp_path: Path) -> None:
    plan = json.loads(cluster.sitectl("plan", "--to", "dc2", "--json").stdout)
    order = [s["id"] for g in plan["groups"] for s in g["steps"]]
    before = cluster.send_mail("dc1")
    cluster.wait_delivered("dc1", before)
    logs = [tmp_path / "switchover.log", tmp_path / "resume.log"]
    run = subprocess.Popen(
        timed_sitectl(
            logs[0], "switchover", "--to", "dc2", "--yes", "--reason", "R2 ZooKeeper leader lost"
        ),
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
        finish = subprocess.run(
            timed_sitectl(logs[1], "resume", "--yes"),
            env=cluster.env(),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
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

    # Nothing written while SUSPENDED, as each process's own lease saw its session.
    first = timed_lines(logs[0])
    windows = suspended_windows(first)
    assert windows, "the switchover's session never saw the ZooKeeper leader go"
    for log in logs:
        lines = timed_lines(log)
        spans = suspended_windows(lines)
        inside = [(at, text) for at, text in writes(lines) for s, e in spans if s < at < e]
        assert not inside, f"written while suspended {spans}: {inside}"
    assert writes(first), "the switchover's transitions were not logged"
