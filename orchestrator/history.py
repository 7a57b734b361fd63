"""`sitectl history`: what moved the service, newest first — the operations ZooKeeper
records and the drills whose reports are kept locally, one row each (patronictl history).

Rows are built from the records alone (pure): an operation's record as the engine wrote
it, a drill's report.json with its verdict computed again (as `drill history` does, so
the two never disagree). An operation a drill ran names that drill. A report that cannot
be read is a row saying so, never left out silently. Reading the reports is the one
function here that touches disk; ZooKeeper is read by the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from orchestrator.drill.measure import verdict
from orchestrator.drill.model import DrillRecord
from orchestrator.drill.report import HTML, JSON, load
from orchestrator.records import OperationRecord, OpStatus

Kind = Literal["operation", "drill"]


@dataclass(frozen=True)
class DrillSeen:
    """One drill's report as found on disk: its record, or why it could not be read."""

    directory: Path
    record: DrillRecord | None
    error: str = ""


@dataclass(frozen=True)
class HistoryRow:
    id: str
    kind: Kind
    mode: str  # switchover | failover | reprotect; a drill: the mode of its move
    route: str  # "dc1→dc2", a drill with failback "dc1→dc2→dc1"
    from_site: str
    to_site: str
    started: float | None  # None: a drill report that could not be read
    finished: float | None  # None: still running (or unreadable)
    status: str  # an operation's status; a drill's verdict: passed | failed | unreadable
    by: str
    automatic: bool  # an operation the controllers started
    reason: str
    note: str  # a few words: the failed step, the drill it ran in, the RTO/RPO figures
    drill: str | None = None  # an operation's drill
    rto_s: float | None = None  # a drill's first move, as measured
    rpo_s: float | None = None
    report: str | None = None  # a drill's report.html

    @property
    def seconds(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "seconds": self.seconds}


def history(
    operations: Iterable[OperationRecord], drills: Iterable[DrillSeen], limit: int = 0
) -> list[HistoryRow]:
    """Every operation and drill as a row, newest first; the newest `limit` (0: all)."""
    drills = list(drills)
    drill_of = {
        op.id: seen.record.id
        for seen in drills
        if seen.record is not None
        for leg in seen.record.legs
        for op in leg.operations
    }
    rows = [operation_row(op, drill_of.get(op.id)) for op in operations]
    rows += [drill_row(seen) for seen in drills]
    rows.sort(key=lambda r: (r.started or 0.0, r.id), reverse=True)
    return rows[:limit] if limit > 0 else rows


def operation_row(op: OperationRecord, drill: str | None = None) -> HistoryRow:
    notes = []
    if drill:
        notes.append(f"drill {drill}")
    if op.failed_step:
        notes.append(f"stopped at {op.failed_step}")
    for label, given in (
        ("data loss accepted", op.accept_data_loss),
        ("fence wait skipped", op.no_fence_wait),
        ("divergent data discarded", op.discard_divergent),
    ):
        if given:
            notes.append(f"{label}: {given}")
    return HistoryRow(
        id=op.id,
        kind="operation",
        mode=op.mode.value,
        route=f"{op.from_site}→{op.to_site}",
        from_site=op.from_site,
        to_site=op.to_site,
        started=op.started,
        finished=op.finished if op.status is not OpStatus.RUNNING else None,
        status=op.status.value,
        by=op.by,
        automatic=op.automatic,
        reason=op.reason,
        note="; ".join(notes),
        drill=drill,
    )


def drill_row(seen: DrillSeen) -> HistoryRow:
    record = seen.record
    report = str(seen.directory / HTML)
    if record is None:
        return HistoryRow(
            id=seen.directory.name,
            kind="drill",
            mode="?",
            route="?",
            from_site="?",
            to_site="?",
            started=None,
            finished=None,
            status="unreadable",
            by="",
            automatic=False,
            reason="",
            note=f"unreadable report: {seen.error}",
            report=report,
        )
    result = verdict(record)
    measured = [leg for leg in result.legs if leg.rto.seconds is not None]
    figures = "; ".join(
        f"{leg.from_site}→{leg.to_site} RTO {leg.rto.seconds:.1f} s, RPO "
        f"{'≥ ' if leg.rpo.lower_bound else ''}{leg.rpo.seconds or 0:.1f} s"
        for leg in measured
    )
    return HistoryRow(
        id=record.id,
        kind="drill",
        mode=_drill_mode(record),
        route=f"{record.from_site}→{record.to_site}"
        + (f"→{record.from_site}" if record.failback else ""),
        from_site=record.from_site,
        to_site=record.to_site,
        started=record.started,
        finished=record.finished,
        status="passed" if result.passed else "failed",
        by=record.by,
        automatic=False,
        reason=record.reason,
        # A failed drill says first why; a passed one its figures.
        note=result.failures[0] if result.failures else figures,
        rto_s=measured[0].rto.seconds if measured else None,
        rpo_s=measured[0].rpo.seconds if measured else None,
        report=report,
    )


def _drill_mode(record: DrillRecord) -> str:
    """The mode of the drill's first move (the record keeps it with its operations)."""
    for leg in record.legs:
        for op in leg.operations:
            if op.mode != "reprotect":
                return op.mode
    return "?"  # stopped before any move


def read_drills(root: Path) -> list[DrillSeen]:
    """Every drill report under `root` (one directory per drill), read."""
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.glob(f"*/{JSON}")):
        try:
            found.append(DrillSeen(path.parent, load(path)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            found.append(DrillSeen(path.parent, None, str(exc)))
    return found


def operation_ids_to_read(ids: list[str], limit: int) -> list[str]:
    """The operations worth reading for the newest `limit` rows: ids sort by start time,
    and drills can only push operations out of those rows, never older ones in."""
    return ids[-limit:] if limit > 0 else ids


def took_text(row: HistoryRow) -> str:
    """How long it took, as a person reads it: "48.2 s", "3 min 05 s", "running"."""
    seconds = row.seconds
    if seconds is None:
        return "running" if row.status == OpStatus.RUNNING.value else "—"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest:02d} s"
