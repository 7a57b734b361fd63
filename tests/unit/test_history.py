"""`sitectl history`'s rows, built from records alone: operations as ZooKeeper keeps
them, drills as their reports do. Tables of cases; no servers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.cli.history import _lines
from orchestrator.drill import report
from orchestrator.history import (
    DrillSeen,
    HistoryRow,
    drill_row,
    history,
    operation_ids_to_read,
    operation_row,
    read_drills,
    took_text,
)
from orchestrator.records import Mode, OperationRecord, OpStatus
from tests.drill.recorded import T0, leg, protect
from tests.drill.recorded import drill as recorded


def op(
    op_id: str,
    started: float,
    *,
    mode: Mode = Mode.SWITCHOVER,
    status: OpStatus = OpStatus.SUCCEEDED,
    took: float | None = 30.0,
    **changes: object,
) -> OperationRecord:
    record = OperationRecord(
        id=op_id,
        mode=mode,
        from_site="dc1",
        to_site="dc2",
        started=started,
        by="alice",
        host="alice@ops1:42",
        reason="change 4711",
        automatic=False,
        plan_digest="0" * 16,
        status=status,
        finished=None if took is None else started + took,
    )
    return replace(record, **changes)


PASSED = recorded(leg("there", "dc1", "dc2", 0))  # operation op-switchover-dc1-dc2 at T0
FAILED = replace(recorded(leg("there", "dc1", "dc2", 0, lost=frozenset({3}))), id="drill-lost-one")
BACK = recorded(
    leg("there", "dc1", "dc2", 0),
    leg("back", "dc2", "dc1", 40),
    protect("dc1", "dc2", 80),
    failback=True,
    active="dc1",
)
UNREADABLE = DrillSeen(Path("/reports/drill-broken"), None, "Expecting value: line 1")


def _seen(record) -> DrillSeen:
    return DrillSeen(Path(f"/reports/{record.id}"), record)


def _ids(rows: list[HistoryRow]) -> list[str]:
    return [r.id for r in rows]


@pytest.mark.parametrize(
    ("operations", "drills", "limit", "expected"),
    [
        ([], [], 0, []),
        # Newest first, operations and drills interleaved by when they started.
        (
            [op("a", T0 - 100), op("c", T0 + 100), op("op-switchover-dc1-dc2", T0)],
            [_seen(PASSED)],
            0,
            ["c", "op-switchover-dc1-dc2", PASSED.id, "a"],
        ),
        ([op("a", T0 - 100), op("c", T0 + 100)], [_seen(PASSED)], 2, ["c", PASSED.id]),
        # A report that cannot be read is listed (last: it has no time), not dropped.
        ([op("a", T0)], [UNREADABLE], 0, ["a", "drill-broken"]),
    ],
)
def test_history_order_and_limit(operations, drills, limit, expected) -> None:
    assert _ids(history(operations, drills, limit)) == expected


def test_an_operation_a_drill_ran_names_the_drill() -> None:
    rows = {
        r.id: r for r in history([op("op-switchover-dc1-dc2", T0), op("x", T0)], [_seen(PASSED)])
    }
    assert rows["op-switchover-dc1-dc2"].drill == PASSED.id
    assert rows["op-switchover-dc1-dc2"].note == f"drill {PASSED.id}"
    assert rows["x"].drill is None and rows["x"].note == ""


@pytest.mark.parametrize(
    ("record", "fields"),
    [
        (
            op("a", T0),
            {"kind": "operation", "mode": "switchover", "route": "dc1→dc2", "status": "succeeded",
             "seconds": 30.0, "by": "alice", "reason": "change 4711", "note": ""},
        ),
        (
            op("b", T0, status=OpStatus.RUNNING, took=None),
            {"status": "running", "finished": None, "seconds": None},
        ),
        (
            op("c", T0, mode=Mode.FAILOVER, status=OpStatus.FAILED, failed_step="mount/dc2/mail",
               accept_data_loss="dc1 burnt", automatic=True),
            {"mode": "failover", "status": "failed", "automatic": True,
             "note": "stopped at mount/dc2/mail; data loss accepted: dc1 burnt"},
        ),
    ],
)  # fmt: skip
def test_operation_rows(record: OperationRecord, fields: dict[str, object]) -> None:
    row = operation_row(record).to_json()
    assert {k: row[k] for k in fields} == fields


@pytest.mark.parametrize(
    ("seen", "fields"),
    [
        (
            _seen(PASSED),
            {"kind": "drill", "mode": "switchover", "route": "dc1→dc2", "status": "passed",
             "rto_s": 9.5, "rpo_s": 0.0, "by": "alice", "reason": "Q4 <b>DR</b> drill",
             "note": "dc1→dc2 RTO 9.5 s, RPO 0.0 s",
             "report": f"/reports/{PASSED.id}/report.html"},
        ),
        (
            _seen(BACK),
            {"route": "dc1→dc2→dc1", "status": "passed",
             "note": "dc1→dc2 RTO 9.5 s, RPO 0.0 s; dc2→dc1 RTO 9.5 s, RPO 0.0 s"},
        ),
        (_seen(FAILED), {"status": "failed", "rto_s": 9.5}),
        (
            UNREADABLE,
            {"id": "drill-broken", "status": "unreadable", "started": None,
             "note": "unreadable report: Expecting value: line 1"},
        ),
    ],
)  # fmt: skip
def test_drill_rows(seen: DrillSeen, fields: dict[str, object]) -> None:
    row = drill_row(seen).to_json()
    assert {k: row[k] for k in fields} == fields


def test_a_failed_drill_says_first_why() -> None:
    row = drill_row(_seen(FAILED))
    assert row.rpo_s == pytest.approx(0.6)  # canary 3 lost: the span since canary 2
    note = row.note
    assert "lost" in note and "RPO" in note, note


@pytest.mark.parametrize(
    ("seconds", "status", "text"),
    [
        (48.24, "succeeded", "48.2 s"),
        (119.9, "succeeded", "119.9 s"),
        (185.0, "failed", "3 min 05 s"),
        (None, "running", "running"),
        (None, "unreadable", "—"),
    ],
)
def test_took_text(seconds: float | None, status: str, text: str) -> None:
    row = operation_row(op("a", T0, took=seconds))
    assert took_text(replace(row, status=status)) == text


@pytest.mark.parametrize(
    ("ids", "limit", "read"),
    [(["a", "b", "c"], 0, ["a", "b", "c"]), (["a", "b", "c"], 2, ["b", "c"]), ([], 5, [])],
)
def test_only_the_operations_that_can_show_are_read(ids, limit, read) -> None:
    assert operation_ids_to_read(ids, limit) == read


def test_read_drills_reads_each_report_and_names_a_broken_one(tmp_path: Path) -> None:
    report.write_reports(PASSED, tmp_path / PASSED.id)
    (tmp_path / "drill-broken").mkdir()
    (tmp_path / "drill-broken" / "report.json").write_text("{")
    found = {s.directory.name: s for s in read_drills(tmp_path)}
    assert found[PASSED.id].record is not None and found[PASSED.id].record.id == PASSED.id
    assert found["drill-broken"].record is None and found["drill-broken"].error
    assert read_drills(tmp_path / "nowhere") == []


def test_the_lines_show_every_row_and_what_happened_fits_80_columns() -> None:
    rows = history(
        [
            op("op-1", T0 + 5, automatic=True),
            op("op-2", T0 + 9, took=None, reason="", status=OpStatus.RUNNING),
        ],
        [_seen(PASSED), UNREADABLE],
    )
    lines = _lines(rows)
    assert [line[line.index("  ") + 2 :] for line in lines if not line.startswith(" ")] == [
        "switchover dc1→dc2  running",
        "switchover dc1→dc2  succeeded in 30.0 s",
        "drill switchover dc1→dc2  passed in 23.1 s",
        "drill ?  unreadable",
    ]
    assert lines[1] == "    op-2 by alice"
    assert lines[3] == "    op-1 by alice (controller): change 4711"
    assert lines[5:8] == [
        f"    {PASSED.id} by alice: Q4 <b>DR</b> drill",
        "    dc1→dc2 RTO 9.5 s, RPO 0.0 s",
        f"    report: /reports/{PASSED.id}/report.html",
    ]
    assert lines[8].startswith("— ")
    assert all(len(line) <= 80 for line in lines if not line.startswith(" "))
