"""`sitectl drill history`: past drills, newest first, read from the report directories.

No separate index: each drill's report.json is the record, and the verdict is computed
again from it, so history can never disagree with the reports it lists. A directory
whose report.json cannot be read is listed as such rather than skipped silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from orchestrator.drill.measure import verdict
from orchestrator.drill.model import DrillRecord
from orchestrator.drill.report import HTML, JSON, load


@dataclass(frozen=True)
class Entry:
    id: str
    started: float | None
    route: str  # "dc1→dc2→dc1"
    passed: bool | None  # None: the report could not be read
    summary: str  # the first reason it failed, or the RTO/RPO figures
    by: str
    reason: str
    report: Path

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "report": str(self.report)}


def history(root: Path) -> list[Entry]:
    if not root.is_dir():
        return []
    entries = [_entry(path) for path in root.glob(f"*/{JSON}")]
    return sorted(entries, key=lambda e: (e.started or 0.0, e.id), reverse=True)


def _entry(path: Path) -> Entry:
    try:
        record = load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Entry(
            path.parent.name,
            None,
            "?",
            None,
            f"unreadable report: {exc}",
            "",
            "",
            path.parent / HTML,
        )
    result = verdict(record)
    route = f"{record.from_site}→{record.to_site}" + (
        f"→{record.from_site}" if record.failback else ""
    )
    return Entry(
        record.id,
        record.started,
        route,
        result.passed,
        result.failures[0] if result.failures else _figures(record),
        record.by,
        record.reason,
        path.parent / HTML,
    )


def _figures(record: DrillRecord) -> str:
    legs = verdict(record).legs
    return "; ".join(
        f"{leg.from_site}→{leg.to_site} RTO {leg.rto.seconds:.1f} s, RPO "
        f"{leg.rpo.seconds or 0:.1f} s"
        for leg in legs
        if leg.rto.seconds is not None
    )


def dumps(entries: list[Entry]) -> str:
    return json.dumps([e.to_json() for e in entries], indent=2)
