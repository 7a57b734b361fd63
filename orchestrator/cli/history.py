"""`sitectl history`: operations and drills, newest first (orchestrator/history builds the
rows). Registered by the main app (`history.register(app)`)."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli.drill import ReportDirOption
from orchestrator.cli.operations import _engine_errors
from orchestrator.cli.options import ConfigOption, JsonOption, load
from orchestrator.cli.output import console, emit_json
from orchestrator.engine import operation as engine
from orchestrator.history import (
    HistoryRow,
    history,
    operation_ids_to_read,
    read_drills,
    took_text,
)

DEFAULT_LIMIT = 20


def register(app: typer.Typer) -> None:
    app.command("history")(history_command)


def history_command(
    config: ConfigOption = None,
    report_dir: ReportDirOption = None,
    limit: Annotated[
        int,
        typer.Option("--limit", "-n", min=0, help="Show the newest N rows (0: all)."),
    ] = DEFAULT_LIMIT,
    json_output: JsonOption = False,
) -> None:
    """List past operations and drills, newest first.

    Operations are read from ZooKeeper's records (switchover, failover, reprotect; by a
    person or the controllers), drills from their reports (with their RTO/RPO verdict).
    An operation a drill ran names the drill. Exit 0, or 1 when ZooKeeper does not
    answer.

    [b]Example:[/b] sitectl history --limit 5 --json
    """
    topo, _ = load(config)
    reports = report_dir if report_dir is not None else topo.resolve(topo.local_state) / "drills"
    with _engine_errors(), engine.session(topo) as s:
        ids = operation_ids_to_read(s.store.operation_ids(), limit)
        operations = [s.store.operation(op_id)[0] for op_id in ids]
    rows = history(operations, read_drills(reports), limit)
    if json_output:
        emit_json([row.to_json() for row in rows])
        return
    if not rows:
        console.print(f"no operations recorded in ZooKeeper, no drills in {reports}", markup=False)
        return
    console.print(_table(rows))


def _table(rows: list[HistoryRow]) -> Table:
    table = Table(show_edge=False, title_justify="left", pad_edge=False)
    # Local time, as `status` shows it; the zone once, in the header.
    table.add_column(f"started ({time.strftime('%Z')})", no_wrap=True)
    for column in ("id", "kind", "mode", "route", "took", "status", "by", "reason"):
        table.add_column(column, no_wrap=column == "id")
    table.add_column("note", overflow="fold")
    for row in rows:
        who = f"{row.by} (controller)" if row.automatic else row.by
        table.add_row(
            _when(row.started),
            row.id,
            row.kind,
            row.mode,
            row.route,
            took_text(row),
            row.status,
            who,
            row.reason,
            row.note,
        )
    return table


def _when(timestamp: float | None) -> str:
    return (
        "—" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
    )
