"""The wide lab (`lab up --shape wide`): two mailbox servers per datacenter, each with its
own store and index volumes, moved by one real switchover.

Mail sent before the switchover to a user on each server (alice on mailbox1, bob on
mailbox2) is read over IMAP at dc2 after it, from that user's own server; the four
volumes are mounted at dc2 and none at dc1; and `lab down --purge` leaves nothing. One
lab up, one switchover: the module's wall time is the shape's cost, not a scenario suite.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.lab import layout, mail, shape, volumes, widemail
from tests.conftest import LabHandle, eventually, lab_of_shape, leftovers, recorded_pids
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab

FROM, TO = "dc1", "dc2"


@pytest.fixture(scope="module")
def wide() -> Iterator[LabHandle]:
    with lab_of_shape(shape.WIDE) as handle:
        yield handle


def _count(lab: LabHandle, site: str, server: shape.MailboxServer, subject: str) -> int:
    """How many messages with `subject` the server's first user sees over IMAP at `site`."""
    address = widemail.server_ip(site, server)
    with mail.imap_client(lab.state(), site, address=address, user=server.users[0]) as imap:
        imap.select("INBOX", readonly=True)
        status, data = imap.search(None, "SUBJECT", f'"{subject}"')
        assert status == "OK"
        return len(data[0].split())


def _mounted(lab: LabHandle) -> dict[str, set[str]]:
    """Per datacenter, which of the four volumes /proc/mounts shows mounted there."""
    mounts = Path("/proc/mounts").read_text()
    state = lab.state()
    return {
        site: {
            rel.name
            for rel in volumes.relationships(state)
            if f" {rel.mount_point(state, site)} " in mounts
        }
        for site in layout.DATACENTERS
    }


def _assert_parallel_plan(plan: dict[str, Any], all_volumes: set[str]) -> None:
    """The switchover's plan works on the four volumes at once in each storage phase, and
    stops and starts both mailbox servers in one step."""
    for phase in ("unmount", "final-sync", "break-mirrors", "mount"):
        (group,) = (g for g in plan["groups"] if g["phase"] == phase)
        assert group["parallel"], f"{phase} is not parallel"
        assert {step["id"].rsplit("/", 1)[1] for step in group["steps"]} == all_volumes
    for site, step_id in ((FROM, "disable-application"), (TO, "start-services")):
        (step,) = (
            s for g in plan["groups"] for s in g["steps"] if s["id"] == f"{step_id}/{site}/mailbox"
        )
        assert set(step["hosts"]) == {f"{site}-{server.name}" for server in shape.WIDE_SERVERS}


def test_a_switchover_moves_both_mailbox_servers_and_their_mail(wide: LabHandle) -> None:
    assert wide.env["shape"] == shape.WIDE
    all_volumes = {v for server in shape.WIDE_SERVERS for v in server.volumes()}
    assert _mounted(wide) == {FROM: all_volumes, TO: set()}

    subject = f"wide {uuid.uuid4().hex[:10]}"
    for server in shape.WIDE_SERVERS:
        mail.send_test_mail(FROM, subject, user=server.users[0])
    for server in shape.WIDE_SERVERS:
        eventually(
            lambda server=server: _count(wide, FROM, server, subject) == 1,
            f"{subject!r} delivered to {server.users[0]} on {FROM}-{server.name}",
        )

    cluster = Cluster(wide)
    cluster.ok("validate")
    # Every dc2 server reachable over SSH at its own address, its mount points' directory there.
    evaluation = cluster.ok("evaluate", "--to", TO)
    assert evaluation["ready"] is True and evaluation["problems"] == [], evaluation["problems"]
    reached = {f["subject"] for f in evaluation["findings"] if f["check"] == "ansible"}
    assert {f"{TO}-{server.name}" for server in shape.WIDE_SERVERS} <= reached
    _assert_parallel_plan(cluster.ok("plan", "--to", TO), all_volumes)
    done = cluster.ok("switchover", "--to", TO, "--yes", "--reason", "wide shape")
    assert done["status"] == "succeeded", done
    assert {s["status"] for s in done["steps"]} == {"done"}
    # Its shared runs (the volumes' steps in lanes beside each other) started no task only
    # for its `when` to skip it: each step left out by tag what its own run would.
    tasks = cluster.shared_run_tasks(done["id"])
    assert "btrfs: break" in {e["task"] for e in tasks if e["event"] == "runner_on_start"}
    assert [e for e in tasks if e["event"] == "runner_on_skipped"] == []

    for server in shape.WIDE_SERVERS:
        # Each user's message, from their own server at dc2: its store came across.
        assert _count(wide, TO, server, subject) == 1, f"{server.name} at {TO}"
        # Dovecot wrote its indexes on the server's index volume, not beside the mail.
        user_index = widemail.index_root(wide.state(), TO, server) / server.users[0]
        assert (user_index / ".INBOX").is_dir(), f"no INBOX index under {user_index}"
    assert _mounted(wide) == {FROM: set(), TO: all_volumes}


def test_lab_down_purge_leaves_nothing(wide: LabHandle) -> None:
    pids = recorded_pids(wide.state_dir)
    assert pids, "the lab runs processes"
    down = wide.cli("down", "--purge")
    assert down.returncode == 0, f"lab down: {down.stderr}{down.stdout}"
    left = leftovers(wide.state_dir, pids)
    assert not left, f"lab down left behind: {', '.join(left)}"
    assert not wide.state_dir.exists()
