"""`sitectl status [--watch]`: the cluster as a table of sites, once or refreshed in place
(kubectl get -w, watch(1)). orchestrator/statustable builds the rows; this draws them.
Registered by the main app (`status.register(app)`)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Annotated

import typer
from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.cli.failures import engine_errors
from orchestrator.cli.options import ConfigOption, JsonOption, load
from orchestrator.cli.output import console, emit_json
from orchestrator.controller.leadership import current_leader
from orchestrator.controller.zkstate import ControllerState
from orchestrator.engine.session import Session, connected, describe
from orchestrator.engine.views import StatusView
from orchestrator.errors import SitectlError
from orchestrator.statustable import COLUMNS, operation_lines, site_rows, summary_lines

DEFAULT_INTERVAL_S = 2.0


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    config: ConfigOption = None,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            "-w",
            help="Refresh until Ctrl-C (exit 0): in place on a terminal, else one block "
            "per refresh; with --json one JSON object per line.",
        ),
    ] = False,
    interval: Annotated[
        float,
        typer.Option("--interval", min=0.2, metavar="SECONDS", help="How often --watch refreshes."),
    ] = DEFAULT_INTERVAL_S,
    json_output: JsonOption = False,
) -> None:
    """Show each site (active, standby, witness; its ticket; its controller and what that
    sees), the lease, a pause, and the operation in progress or the last one.

    [b]Example:[/b] sitectl status --watch --interval 5
    """
    topo, _ = load(config)
    sites = {name: site.kind for name, site in topo.sites.items()}
    with engine_errors(), connected(topo) as s:
        if not watch:
            info = _read(s)
            if json_output:
                emit_json(info.to_json())
            else:
                console.print(render(info, sites, time.time()))
            return
        read = lambda: _read(s)  # noqa: E731 - the one read each refresh makes
        if json_output:
            watch_until_interrupted(lambda: _json_line(read), interval)
        elif console.is_terminal:
            # Redrawn in place; leaving the `with` (Ctrl-C too) keeps the last status on
            # screen and gives the cursor back.
            with Live(console=console, auto_refresh=False) as live:
                watch_until_interrupted(
                    lambda: live.update(_stamped(read, sites, interval), refresh=True),
                    interval,
                )
        else:
            watch_until_interrupted(lambda: _block(read, sites, interval), interval)


def _read(s: Session) -> StatusView:
    leader = current_leader(s.client, s.paths)
    state = ControllerState(s.client, s.paths)
    last = state.last_evaluation()
    return replace(
        describe(s),
        controllers=tuple(state.running(leader)),
        evaluation=last.to_dict() if last else None,
    )


def render(info: StatusView, sites: Mapping[str, str], now: float) -> RenderableType:
    lines = summary_lines(info, now)
    table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
    for column in COLUMNS:
        table.add_column(column.upper(), overflow="fold")
    for row in site_rows(info, sites, now):
        table.add_row(*row.cells(), style="bold" if row.role == "active" else None)
    return Group(
        Text(lines[0], style="bold"),
        *(Text(line) for line in lines[1:]),
        table,
        *(Text(line) for line in operation_lines(info)),
    )


def watch_until_interrupted(
    refresh: Callable[[], None],
    interval: float,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Refresh every `interval` s until Ctrl-C, which ends the watch normally (exit 0):
    stopping a watch is what it is for, not an error."""
    try:
        while True:
            refresh()
            sleep(interval)
    except KeyboardInterrupt:
        return


def _stamped(
    read: Callable[[], StatusView], sites: Mapping[str, str], interval: float
) -> RenderableType:
    """One refresh: the status, or the one line saying why it could not be read (the
    watch goes on: ZooKeeper may be electing a leader)."""
    now = time.time()
    header = Text(
        f"{time.strftime('%H:%M:%S', time.localtime(now))} · every {interval:g} s · Ctrl-C ends",
        style="dim",
    )
    try:
        return Group(header, render(read(), sites, now))
    except SitectlError as exc:
        return Group(header, Text(f"unavailable: {exc}"))


def _block(read: Callable[[], StatusView], sites: Mapping[str, str], interval: float) -> None:
    console.print(_stamped(read, sites, interval))
    console.print()


def _json_line(read: Callable[[], StatusView]) -> None:
    try:
        data = read().to_json()
    except SitectlError as exc:
        data = {"error": f"unavailable: {exc}"}
    # One object per line (NDJSON), flushed: a reader of a pipe sees each refresh.
    sys.stdout.write(json.dumps({"at": time.time(), **data}) + "\n")
    sys.stdout.flush()
