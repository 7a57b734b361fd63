"""How an operation shows while it runs and when it ends, whether sitectl runs it here
(`--local`) or follows it from the controller's records: a spinner per running step,
the engine's sentences as they are logged, then the table of steps and the last line."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import typer
from rich.logging import RichHandler
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator.cli.exitcodes import ExitCode
from orchestrator.cli.output import console, emit_json, err_console
from orchestrator.engine import exits
from orchestrator.engine.views import OutcomeView
from orchestrator.plan import Plan
from orchestrator.plan.model import Step
from orchestrator.records import OperationRecord, StepRecord


class Spinners:
    """Live progress: one spinner per running step (steps of a group run in parallel)."""

    def __init__(self, progress: Progress, total: int) -> None:
        self._progress = progress
        self._overall = progress.add_task("steps", total=total)
        self._tasks: dict[str, Any] = {}
        self._lock = threading.Lock()

    def step_started(self, step: Step) -> None:
        where = f" on {', '.join(step.hosts)}" if step.hosts else ""
        with self._lock:
            self._tasks[step.id] = self._progress.add_task(f"{step.id}{where}", total=None)

    def task_started(self, step_id: str, host: str, task: str) -> None:
        # Called per task and host from ansible-runner's thread: only a description to
        # swap; rich redraws on its own schedule.
        with self._lock:
            task_id = self._tasks.get(step_id)
            if task_id is not None:
                self._progress.update(task_id, description=f"{step_id} — {host}: {task}")

    def step_finished(self, step: Step, record: StepRecord) -> None:
        with self._lock:
            task = self._tasks.pop(step.id, None)
            if task is not None:
                self._progress.remove_task(task)
            self._progress.advance(self._overall)


@contextmanager
def live(plan: Plan | None, quiet: bool) -> Iterator[Any]:
    engine_log = logging.getLogger("sitectl.engine")
    engine_log.setLevel(logging.INFO)
    if quiet:
        yield None
        return
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    # Every engine decision is one plain sentence: show them as they happen.
    handler = RichHandler(console=err_console, show_path=False, show_level=False, markup=False)
    engine_log.addHandler(handler)
    try:
        with progress:
            yield Spinners(progress, sum(1 for _ in plan.steps()) if plan else 0)
    finally:
        engine_log.removeHandler(handler)


def summary(
    op: OperationRecord, step_ids: Iterable[str], records: Mapping[str, StepRecord]
) -> None:
    """The operation's steps in the plan's order (pending ones too), then its last line:
    what `sitectl` prints at the end, whether it ran the operation or followed it."""
    table = Table(title=f"operation {op.id}", title_justify="left")
    for column in ("step", "status", "seconds", "detail"):
        table.add_column(column)
    for step_id in step_ids:
        record = records.get(step_id)
        if record is None:
            table.add_row(step_id, "pending", "", "")
            continue
        duration = f"{record.duration:.2f}" if record.duration is not None else ""
        table.add_row(step_id, record.status.value, duration, record.detail)
    console.print(table)
    if op.accept_data_loss:
        console.print(f"data loss accepted: {op.accept_data_loss}", markup=False)
    if op.no_fence_wait:
        console.print(f"fence wait skipped: {op.no_fence_wait}", markup=False)
    if op.discard_divergent:
        console.print(f"divergent data discarded: {op.discard_divergent}", markup=False)
    console.print(exits.closing_line(op), markup=False)


def finish(
    op: OperationRecord,
    step_ids: list[str],
    records: Mapping[str, StepRecord],
    figures: Mapping[str, object],
    json_output: bool,
) -> None:
    """Print the operation's end (the summary, or its JSON) and exit as scripts expect:
    0 succeeded, 4 refused before any change, 1 otherwise."""
    if json_output:
        emit_json(OutcomeView.of(op, step_ids, records, figures).to_json())
    else:
        summary(op, step_ids, records)
    code = exits.outcome_exit(op)
    if code is not ExitCode.OK:
        raise typer.Exit(int(code))
