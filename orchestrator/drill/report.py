"""The drill's reports: report.html (jinja2, one self-contained page), report.json (the
record plus its figures) and junit.xml. All three are rendered from the record alone, so
an old drill's report.json renders the same page again (`render_html(load(path))`)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from orchestrator.drill import junit, timeline
from orchestrator.drill.measure import Verdict, verdict
from orchestrator.drill.model import DrillRecord
from orchestrator.safefiles import private_dir, write_atomic

HTML, JSON, JUNIT = "report.html", "report.json", "junit.xml"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("orchestrator.drill", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,  # a typo in the template fails the tests, not a drill
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class ReportPaths:
    directory: Path
    html: Path
    json: Path
    junit: Path


def report_json(record: DrillRecord, result: Verdict | None = None) -> dict[str, Any]:
    result = result or verdict(record)
    return {
        **record.to_json(),
        "verdict": {"passed": result.passed, "failures": list(result.failures)},
        "figures": [_plain(leg) for leg in result.to_json()["legs"]],
    }


def load(path: Path) -> DrillRecord:
    return DrillRecord.from_json(json.loads(path.read_text(encoding="utf-8")))


def render_html(record: DrillRecord, result: Verdict | None = None) -> str:
    result = result or verdict(record)
    return _env.get_template("report.html.j2").render(
        r=record,
        v=result,
        tl=timeline.build(record),
        T=timeline,
        when=when_text,
        secs=_secs,
        target=_target,
        systems=list(dict.fromkeys(c.system for snap in record.snapshots for c in snap.checks)),
        failed_steps=[
            (op, step)
            for leg in record.legs
            for op in leg.operations
            for step in op.steps
            if step.status == "failed"
        ],
    )


def write_reports(record: DrillRecord, directory: Path) -> ReportPaths:
    """Write the three files into `directory` (created 0700, as is any missing folder
    above it; `directory` itself may not be a link); each replaced atomically.

    Each file is written under a fresh name in `directory` and renamed over its own
    (orchestrator/safefiles.write_atomic): a link planted at report.json is replaced by
    the report, and its target — any file root may write — is left untouched. Replaced,
    not refused: the report is sitectl's to write there, and what the link named is not
    touched either way."""
    private_dir(directory)
    result = verdict(record)
    paths = ReportPaths(directory, directory / HTML, directory / JSON, directory / JUNIT)
    _atomic(paths.json, json.dumps(report_json(record, result), indent=2) + "\n")
    _atomic(paths.junit, junit.render(record, result))
    _atomic(paths.html, render_html(record, result))
    return paths


def _atomic(path: Path, text: str) -> None:
    write_atomic(path, text)  # a reader never sees half a report


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def when_text(t: float | None) -> str:
    if t is None:
        return "—"
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _target(value: float) -> str:
    return f"{value / 60:g} min" if value >= 120 else f"{value:g} s"


def _secs(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "—"
    if value >= 120:
        return f"{value / 60:.1f} min"
    return f"{value:.{digits}f} s"
