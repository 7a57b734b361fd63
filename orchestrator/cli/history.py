"""`sitectl history`: operations and drills, newest first (orchestrator/history builds the
rows). Registered by the main app (`history.register(app)`)."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from orchestrator.cli.drill import ReportDirOption
from orchestrator.cli.failures import engine_errors
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
    with engine_errors(), engine.session(topo) as s:
        ids = operation_ids_to_read(s.store.operation_ids(), limit)
        operations = [s.store.operation(op_id)[0] for op_id in ids]
    rows = history(operations, read_drills(reports), limit)
    if json_output:
        emit_json([row.to_json() for row in rows])
        return
    if not rows:
        console.print(f"no operations recorded in ZooKeeper, no drills in {reports}", markup=False)
        return
    for line in _lines(rows):
        console.print(line, markup=False)


def _lines(rows: list[HistoryRow]) -> list[str]:
    """Plain lines, not a table (as `drill history`): ten columns do not fit 80, and a
    line pastes whole into an incident ticket. The first line of each entry says what
    happened and fits 80 columns; the indented ones say which, who, why and what else."""
    zone = time.strftime("%Z")
    lines = []
    for row in rows:
        what = row.mode if row.kind == "operation" else f"drill {row.mode}".rstrip(" ?")
        ended = row.status if row.seconds is None else f"{row.status} in {took_text(row)}"
        lines.append(f"{_when(row.started)} {zone}  {what} {row.route}  {ended}")
        who = f"{row.by} (controller)" if row.automatic else row.by
        lines.append(f"    {row.id} by {who or '?'}" + (f": {row.reason}" if row.reason else ""))
        if row.note:
            lines.append(f"    {row.note}")
        if row.report:
            lines.append(f"    report: {row.report}")
    return lines


def _when(timestamp: float | None) -> str:
    if timestamp is None:
        return "—"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
