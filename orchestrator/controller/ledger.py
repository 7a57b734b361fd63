"""What a controller's /metrics says of the history (pure): from `sitectl history`'s rows
(the operation records in ZooKeeper and the drill reports), counts per kind and the
timestamps an alert compares with `time()`.

A timestamp that has no event yet is 0, not absent: "no passed drill for 90 days" must
fire for a cluster that never passed one, and `time() - 0` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from orchestrator.history import HistoryRow
from orchestrator.records import Mode, OpStatus

# An operation still to be finished: running, or stopped where a resume or abort is due.
UNFINISHED = frozenset({OpStatus.RUNNING.value, OpStatus.FAILED.value, OpStatus.INTERRUPTED.value})


@dataclass(frozen=True)
class Current:
    """The operation ZooKeeper names as current, while it is unfinished."""

    id: str
    mode: str
    status: str
    started: float


@dataclass(frozen=True)
class Ledger:
    # (mode, status, trigger) -> operations recorded; trigger: automatic | drill | manual
    operations: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    last_operation: float = 0.0  # when the newest operation started
    last_automatic_failover: float = 0.0  # when the newest automatic failover started
    current: Current | None = None
    drills: Mapping[str, int] = field(default_factory=dict)  # passed | failed | unreadable
    last_drill: float = 0.0  # when the newest drill ended (started, if it never did)
    last_passed_drill: float = 0.0  # when the newest passed drill ended
    drill_rto: float | None = None  # the newest drill that measured them: its first move's
    drill_rpo: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", MappingProxyType(dict(self.operations)))
        object.__setattr__(self, "drills", MappingProxyType(dict(self.drills)))


def trigger(row: HistoryRow) -> str:
    """Who asked for an operation: the controllers, a drill, or a person."""
    return "automatic" if row.automatic else "drill" if row.drill else "manual"


def ledger(rows: Iterable[HistoryRow], current_id: str | None = None) -> Ledger:
    """The ledger of `rows` (any order); `current_id`: the operation ZooKeeper names as
    current, reported while its record says it is unfinished."""
    rows = list(rows)
    operations = [r for r in rows if r.kind == "operation"]
    drills = [r for r in rows if r.kind == "drill"]
    current = next(
        (
            Current(r.id, r.mode, r.status, r.started or 0.0)
            for r in operations
            if r.id == current_id and r.status in UNFINISHED
        ),
        None,
    )
    measured = [r for r in drills if r.rto_s is not None]
    newest_measured = max(measured, key=_drill_time, default=None)
    return Ledger(
        operations=Counter((r.mode, r.status, trigger(r)) for r in operations),
        last_operation=max((r.started or 0.0 for r in operations), default=0.0),
        last_automatic_failover=max(
            (r.started or 0.0 for r in operations if r.automatic and r.mode == Mode.FAILOVER.value),
            default=0.0,
        ),
        current=current,
        drills=Counter(r.status for r in drills),
        last_drill=max((_drill_time(r) for r in drills), default=0.0),
        last_passed_drill=max(
            (_drill_time(r) for r in drills if r.status == "passed"), default=0.0
        ),
        drill_rto=newest_measured.rto_s if newest_measured else None,
        drill_rpo=newest_measured.rpo_s if newest_measured else None,
    )


def _drill_time(row: HistoryRow) -> float:
    return row.finished or row.started or 0.0
