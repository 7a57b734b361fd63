"""controller/ledger.py: the history's counts and timestamps for /metrics (pure)."""

from __future__ import annotations

from orchestrator.controller.ledger import Current, Ledger, ledger
from orchestrator.history import HistoryRow, operation_row
from orchestrator.records import Mode, OperationRecord, OpStatus


def op(
    op_id: str,
    mode: Mode,
    started: float,
    status: OpStatus = OpStatus.SUCCEEDED,
    *,
    automatic: bool = False,
    drill: str | None = None,
) -> HistoryRow:
    record = OperationRecord(
        op_id, mode, "dc1", "dc2", started, "alice", "ops1", "", automatic, "digest", drill=drill
    )
    record = (
        record.with_status(status, now=started + 60) if status is not OpStatus.RUNNING else record
    )
    return operation_row(record, drill)


def drill(drill_id: str, ended: float, status: str, rto: float | None = 40.0) -> HistoryRow:
    return HistoryRow(
        id=drill_id,
        kind="drill",
        mode="switchover",
        route="dc1→dc2→dc1",
        from_site="dc1",
        to_site="dc2",
        started=ended - 600,
        finished=ended,
        status=status,
        by="alice",
        automatic=False,
        reason="",
        note="",
        rto_s=rto,
        rpo_s=None if rto is None else 0.0,
    )


def test_nothing_recorded_is_zeros_so_an_alert_on_never_fires() -> None:
    assert ledger([]) == Ledger()
    assert ledger([]).last_passed_drill == 0.0


def test_counts_by_mode_status_and_trigger_and_the_newest_of_each_kind() -> None:
    rows = [
        op("a", Mode.SWITCHOVER, 100.0, drill="d1"),
        op("b", Mode.FAILOVER, 200.0, automatic=True),
        op("c", Mode.REPROTECT, 300.0),
        op("d", Mode.FAILOVER, 400.0, OpStatus.FAILED),
        drill("d1", 1000.0, "passed"),
        drill("d2", 2000.0, "failed", rto=90.0),
        drill("d3", 3000.0, "unreadable", rto=None),
    ]
    found = ledger(rows, current_id="d")
    assert dict(found.operations) == {
        ("switchover", "succeeded", "drill"): 1,
        ("failover", "succeeded", "automatic"): 1,
        ("reprotect", "succeeded", "manual"): 1,
        ("failover", "failed", "manual"): 1,
    }
    assert found.last_operation == 400.0
    assert found.last_automatic_failover == 200.0  # a person's failover is not counted
    assert found.current == Current("d", "failover", "failed", 400.0)
    assert dict(found.drills) == {"passed": 1, "failed": 1, "unreadable": 1}
    assert (found.last_drill, found.last_passed_drill) == (3000.0, 1000.0)
    # The newest drill that measured an RTO, failed or not: what the dashboard shows.
    assert (found.drill_rto, found.drill_rpo) == (90.0, 0.0)


def test_the_current_operation_only_while_unfinished() -> None:
    running = op("r", Mode.SWITCHOVER, 10.0, OpStatus.RUNNING)
    assert ledger([running], "r").current == Current("r", "switchover", "running", 10.0)
    assert ledger([op("s", Mode.SWITCHOVER, 10.0)], "s").current is None
    assert ledger([running], None).current is None
