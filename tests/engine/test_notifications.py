"""Issue 20 item 3 on the real lab: a webhook on loopback gets every event of a
switchover, of a failed one (dc1's SMTP port held, so the way back cannot start its
MTA) and its resume, and of a drill, in order, with the documented payload
(docs/notifications.md)."""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config import load_topology
from orchestrator.lab import layout
from tests.conftest import eventually
from tests.drill.conftest import port_taken
from tests.engine.conftest import Cluster
from tests.webhook import PAYLOAD_KEYS, Receiver, receiving

pytestmark = pytest.mark.lab

KEYS = set(PAYLOAD_KEYS)


def _topology(cluster: Cluster, url: str) -> Path:
    """The lab's topology with one webhook for every event, beside it (its relative paths
    stay valid). Plain http is fine without `insecure`: loopback crosses no network."""
    doc = yaml.safe_load(cluster.topology_file.read_text())
    doc["notifications"] = {"timeout": "5s", "targets": [{"url": url}]}
    path = cluster.topology_file.with_name("topology-notify.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_topology(path)  # the copy must still be valid
    return path


def _ran(cluster: Cluster, topo: Path, *args: str) -> dict[str, Any]:
    return cluster.ok(*args, SITECTL_CONFIG=str(topo))


def _of(receiver: Receiver, op_id: str, count: int) -> list[dict[str, Any]]:
    """The events of operation `op_id`, once `count` have arrived, ordered by (epoch, seq)."""
    eventually(
        lambda: len([p for p in receiver.posts if p["operation"] == op_id]) >= count,
        f"{count} events of {op_id}",
        within=15,
    )
    got = [p for p in receiver.posts if p["operation"] == op_id]
    return sorted(got, key=lambda p: (p["epoch"], p["seq"]))


def _common(events: list[dict[str, Any]], **fields: Any) -> None:
    for event in events:
        assert set(event) == KEYS, event
        assert event["schema"] == "sitectl.event/v1"
        assert event["cluster"] == "sitectl-lab"
        assert event["by"] and event["findings"] == []
        assert calendar.timegm(time.strptime(event["at"][:19], "%Y-%m-%dT%H:%M:%S")) > 0
        assert event["at"].endswith("Z")
        for key, value in fields.items():
            assert event[key] == value, (key, event)


def _story(events: list[dict[str, Any]]) -> list[tuple[str, int, str | None, str | None]]:
    return [(e["event"], e["seq"], e["step"], e["status"]) for e in events]


def test_a_switchover_a_failed_one_and_its_resume_tell_every_event_in_order(
    cluster: Cluster,
) -> None:
    with receiving() as receiver:
        topo = _topology(cluster, receiver.url)

        there = _ran(
            cluster, topo, "switchover", "--to", "dc2", "--yes", "--reason", "notify: there"
        )
        op = there["id"]
        events = _of(receiver, op, 2)
        assert _story(events) == [("started", 1, None, None), ("finished", 2, None, "succeeded")]
        _common(
            events,
            operation=op,
            mode="switchover",
            trigger="manual",
            drill=None,
            from_site="dc1",
            to_site="dc2",
            reason="notify: there",
        )
        assert events[0]["epoch"] == events[1]["epoch"]
        assert events[1]["detail"].startswith("dc2 is active")

        reprotect = _ran(cluster, topo, "reprotect", "--yes", "--reason", "notify: reprotect")
        rop = reprotect["id"]
        events = _of(receiver, rop, 2)
        assert _story(events) == [("started", 1, None, None), ("finished", 2, None, "succeeded")]
        _common(events, operation=rop, mode="reprotect", trigger="manual")

        # The way back fails: dc1's MTA cannot bind its port.
        with port_taken(cluster.lab, "dc1", layout.SMTP_PORT):
            back = cluster.sitectl(
                "switchover",
                "--to",
                "dc1",
                "--yes",
                "--json",
                "--reason",
                "notify: back",
                SITECTL_CONFIG=str(topo),
            )
        assert back.returncode != 0, back.stdout
        back_op = cluster.status()["operation"]
        bop = back_op["id"]
        failed = _of(receiver, bop, 3)
        step = failed[1]["step"]
        assert step in ("start-services/dc1/mta", "verify/application/dc1"), failed
        assert _story(failed) == [
            ("started", 1, None, None),
            ("step-failed", 2, step, None),
            ("failed", 3, step, "failed"),
        ]
        _common(failed, operation=bop, mode="switchover", from_site="dc2", to_site="dc1")
        assert failed[1]["detail"].startswith(f"step {step} failed: ")
        assert failed[2]["detail"].startswith(f"step {step} failed: ")

        # With the port free again, resume finishes it: a new run, a higher epoch.
        _ran(cluster, topo, "resume", "--yes")
        events = _of(receiver, bop, 5)
        assert _story(events[3:]) == [
            ("resumed", 1, None, None),
            ("finished", 2, None, "succeeded"),
        ]
        assert events[3]["epoch"] > events[2]["epoch"]
        _common(events[3:], operation=bop, reason="notify: back", trigger="manual")

        home = _ran(cluster, topo, "reprotect", "--yes", "--reason", "notify: home")
        events = _of(receiver, home["id"], 2)
        assert _story(events) == [("started", 1, None, None), ("finished", 2, None, "succeeded")]
        # Nothing else was sent, nothing twice: four operations, one resume, 11 events.
        time.sleep(0.5)
        assert len(receiver.posts) == 11, receiver.events()
    cluster.assert_protected("dc1")


def test_a_drill_s_operation_says_it_is_a_drill(cluster: Cluster, tmp_path: Path) -> None:
    with receiving() as receiver:
        topo = _topology(cluster, receiver.url)
        done = cluster.sitectl(
            "drill",
            "--to",
            "dc2",
            "--yes",
            "--json",
            "--reason",
            "notify: drill",
            "--report-dir",
            str(tmp_path),
            SITECTL_CONFIG=str(topo),
            timeout=600,
        )
        assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
        eventually(lambda: len(receiver.posts) >= 2, "the drill's events", within=15)
        time.sleep(0.5)
        events = sorted(receiver.posts, key=lambda p: (p["epoch"], p["seq"]))
    assert _story(events) == [("started", 1, None, None), ("finished", 2, None, "succeeded")]
    drill = events[0]["drill"]
    assert drill and drill.startswith("drill-")
    _common(
        events,
        mode="switchover",
        trigger="drill",
        drill=drill,
        from_site="dc1",
        to_site="dc2",
        reason=f"DR drill {drill}: notify: drill",
    )
    cluster.assert_active("dc2")  # the next scenario starts from a new lab
