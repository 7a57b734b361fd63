"""`sitectl status` for people: a row per site, the cluster's lines, and the watch loop
that Ctrl-C ends normally. Pure: views built by hand, no servers."""

from __future__ import annotations

from dataclasses import replace

import pytest
from rich.console import Console
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.cli.status import render, watch_until_interrupted
from orchestrator.coordination.ticket import Ticket
from orchestrator.engine.views import OperationView, StatusView
from orchestrator.records import Mode, OpStatus
from orchestrator.statustable import site_rows, summary_lines, ticket_cell

NOW = 1_800_000_000.0
SITES = {"dc1": "datacenter", "dc2": "datacenter", "witness": "witness"}
TICKET = Ticket(holder="dc1", epoch=7, granted_at=NOW - 100, renewed_at=NOW - 2, ttl=10)


def controller(site: str, leader: bool = False, ago: float | None = 1.0) -> dict[str, object]:
    return {
        "site": site,
        "identity": f"{site} sitectl@{site}:1",
        "leader": leader,
        "last_report": None if ago is None else NOW - ago,
        "sees": {"dc1": "up", "dc2": "up"} if ago is not None else {},
    }


VIEW = StatusView(
    cluster="sitectl-lab",
    active_site="dc1",
    active_site_recorded=True,
    lock_holders=(),
    paused=None,
    operation=None,
    controllers=(controller("dc1"), controller("dc2"), controller("witness", leader=True)),
    ticket=TICKET,
)


@pytest.mark.parametrize(
    ("view", "rows"),
    [
        (
            VIEW,
            [
                ("dc1", "active", "held, expires in 8.0 s", "follower", "dc1 up, dc2 up", "1 s ago"),
                ("dc2", "standby", "", "follower", "dc1 up, dc2 up", "1 s ago"),
                ("witness", "witness", "", "leader", "dc1 up, dc2 up", "1 s ago"),
            ],
        ),
        (
            replace(VIEW, active_site="dc2", controllers=(), ticket=None),
            [
                ("dc1", "standby", "", "none", "", ""),
                ("dc2", "active", "", "none", "", ""),
                ("witness", "witness", "", "none", "", ""),
            ],
        ),
        (
            replace(VIEW, controllers=(controller("dc2", ago=None),)),
            [
                ("dc1", "active", "held, expires in 8.0 s", "none", "", ""),
                ("dc2", "standby", "", "follower", "nothing seen yet", "no report yet"),
                ("witness", "witness", "", "none", "", ""),
            ],
        ),
    ],
)  # fmt: skip
def test_site_rows(view: StatusView, rows: list[tuple[str, ...]]) -> None:
    assert [r.cells() for r in site_rows(view, SITES, NOW)] == rows


@pytest.mark.parametrize(
    ("ticket", "site", "cell"),
    [
        (None, "dc1", ""),
        (TICKET, "dc1", "held, expires in 8.0 s"),
        (TICKET, "dc2", ""),
        (replace(TICKET, renewed_at=NOW - 13), "dc1", "held, expired 3.0 s ago"),
        (replace(TICKET, revoked_at=NOW - 1), "dc1", "held, revoked"),
        (replace(TICKET, holder="dc2", lost_by="dc1"), "dc1", "lost to dc2"),
        (replace(TICKET, holder="dc2", lost_by="dc1"), "dc2", "held, expires in 8.0 s"),
    ],
)
def test_ticket_cell(ticket: Ticket | None, site: str, cell: str) -> None:
    assert ticket_cell(ticket, site, NOW) == cell


def test_summary_lines() -> None:
    lines = summary_lines(replace(VIEW, paused="maintenance", lock_holders=("alice@ops:1",)), NOW)
    assert lines[:3] == [
        "cluster sitectl-lab: dc1 is active",
        "lease: alice@ops:1",
        "automation paused: maintenance",
    ]
    assert lines[3].startswith("site ticket: held by dc1 (epoch 7)")
    bare = summary_lines(replace(VIEW, active_site_recorded=False, controllers=()), NOW)
    assert bare[0].endswith("(from the topology: no operation recorded yet)")
    assert bare[-2:] == [
        "controllers: none running (no automatic failover)",
        "plan evaluation: none recorded yet (the leading controller evaluates)",
    ]


def test_render_draws_the_table_and_the_operation() -> None:
    op = OperationView(
        id="20261206T220000Z-ab12", mode=Mode.SWITCHOVER, from_site="dc1", to_site="dc2",
        status=OpStatus.RUNNING, started=NOW - 30, finished=None, by="alice", host="ops",
        reason="change 4711", accept_data_loss=None, automatic=False, epoch=8,
        in_progress=True, running_steps=("mount/dc2/mail",), steps_finished=9,
        failed_step=None, message="",
        waiting_for=({"step": "approval/cab", "since": NOW - 60, "approvers": ["bob", "carol"],
                      "timeout": None, "on_timeout": "reject", "description": "CAB"},),
    )  # fmt: skip
    console = Console(width=200, record=True)
    console.print(render(replace(VIEW, operation=op), SITES, NOW))
    text = console.export_text()
    assert "SITE" in text and "TICKET" in text and "CONTROLLER" in text
    assert "in progress: 20261206T220000Z-ab12 switchover dc1→dc2 running" in text
    assert "running mount/dc2/mail" in text
    assert (
        "at approval/cab for bob or carol: sitectl approve 20261206T220000Z-ab12 -r REASON "
        "(or reject)" in text
    )


def test_the_watch_ends_normally_on_ctrl_c() -> None:
    refreshed: list[int] = []
    naps: list[float] = []

    def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            raise KeyboardInterrupt

    watch_until_interrupted(lambda: refreshed.append(1), 0.5, sleep=sleep)
    assert (len(refreshed), naps) == (3, [0.5, 0.5, 0.5])


def test_an_interval_below_the_floor_is_refused() -> None:
    done = CliRunner().invoke(app, ["status", "--watch", "--interval", "0.01"])
    assert done.exit_code == 2
    assert "--interval" in done.output
