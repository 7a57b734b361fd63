"""`sitectl drill` refuses bad input before touching anything; `drill history` lists
recorded drills. No servers: input errors stop before the first connection."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.cli import drill
from orchestrator.config.model import Topology
from orchestrator.drill import report
from orchestrator.drill.model import DrillRecord
from orchestrator.drill.run import DrillOptions, Watcher
from tests.drill.recorded import drill as recorded
from tests.drill.recorded import leg, protect

EXAMPLE = Path(__file__).parents[2] / "inventories" / "example-zimbra" / "topology.yaml"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        pass

    drill.register(app)  # exactly what main.py does
    return app


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(_app(), ["drill", *args])
    return result.exit_code, result.output


def test_bad_targets_are_refused_with_the_fix() -> None:
    code, out = _run("--to", "dc2", "--targets", "rto=fast", "-c", str(EXAMPLE), "--yes")
    assert code == 2
    assert "'rto=fast' is not NAME=DURATION — write e.g. rto=90s,rpo=0s" in out


def test_an_unknown_site_is_refused() -> None:
    code, out = _run("--to", "dc9", "-c", str(EXAMPLE), "--yes")
    assert code == 2
    assert "--to dc9: not a datacenter — use one of: dc1, dc2" in out


def test_to_is_required() -> None:
    code, out = _run("-c", str(EXAMPLE), "--yes")
    assert code == 2
    assert "--to SITE is required" in out


def test_no_terminal_and_no_yes_is_refused() -> None:
    code, out = _run("--to", "dc2", "-c", str(EXAMPLE))
    assert code == 2
    assert "pass --yes" in out


def test_history_lists_recorded_drills(tmp_path: Path) -> None:
    passed = recorded(leg("there", "dc1", "dc2", 0))
    report.write_reports(passed, tmp_path / passed.id)

    code, out = _run("history", "--report-dir", str(tmp_path), "--json")

    assert code == 0, out
    listed = json.loads(out)
    assert [(e["id"], e["passed"], e["route"]) for e in listed] == [(passed.id, True, "dc1→dc2")]
    code, out = _run("history", "--report-dir", str(tmp_path))
    assert code == 0 and passed.id in out and "passed" in out


def test_history_of_no_drills(tmp_path: Path) -> None:
    code, out = _run("history", "--report-dir", str(tmp_path / "none"))
    assert code == 0
    assert "no drills recorded in" in out


SCREEN_LINES = 24  # a terminal's height: the summary must not scroll away


def _with_recorded(monkeypatch: pytest.MonkeyPatch, record: DrillRecord) -> list[DrillOptions]:
    """`sitectl drill` as the operator runs it, with the drill itself replaced by a recording."""
    seen: list[DrillOptions] = []

    def run(topo: Topology, options: DrillOptions, watcher: Watcher | None = None) -> DrillRecord:
        seen.append(options)
        record.targets = options.targets  # as run_drill records what it was given
        return record

    monkeypatch.setattr(drill, "run_drill", run)
    return seen


def _summary(tmp_path: Path, *args: str) -> tuple[int, list[str]]:
    code, out = _run(
        "--to",
        "dc2",
        "--failback",
        "-c",
        str(EXAMPLE),
        "--yes",
        "--report-dir",
        str(tmp_path),
        *args,
    )
    return code, out.rstrip("\n").splitlines()


def test_summary_of_a_passed_failback_fits_one_screen_and_ends_with_the_report(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    passed = recorded(
        leg("there", "dc1", "dc2", 0),
        leg("back", "dc2", "dc1", 60),
        protect("dc1", "dc2", 90),
        failback=True,
        active="dc1",
    )
    _with_recorded(monkeypatch, passed)

    code, lines = _summary(tmp_path)

    assert code == 0, lines
    assert lines[0] == f"drill {passed.id} dc1→dc2→dc1: PASSED"
    assert "active site: dc1 as sitectl recorded it" in lines
    assert "dc1 protected towards dc2 again: yes" in lines
    # The example topology's policy.drill_targets, said to be policy.
    assert (
        "targets: RTO 900 s (topology: policy.drill_targets), "
        "RPO 0 s (topology: policy.drill_targets)"
    ) in lines
    assert not any("✗" in line or "→ " in line for line in lines), lines  # no failure, no advice
    assert lines[-1] == f"report: {tmp_path / passed.id / 'report.html'}"
    assert (tmp_path / passed.id / "report.html").is_file()
    assert len(lines) <= SCREEN_LINES, "\n".join(lines)


def test_summary_of_a_stopped_drill_says_where_the_service_is_and_what_to_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    stopped = recorded(
        leg("there", "dc1", "dc2", 0, status="failed", failed_step="start-services/dc2/mta"),
        failback=True,
        active="dc1",
        stopped="switchover dc1→dc2 failed at step start-services/dc2/mta: port 2525 in use",
    )
    stopped.where = "dc2 holds the data and DNS points at it; its services are not all verified"
    stopped.advice = [
        "fix what failed, then `sitectl resume op-switchover-dc1-dc2`",
        "or `sitectl abort op-switchover-dc1-dc2` to stop where it is",
    ]
    _with_recorded(monkeypatch, stopped)

    code, lines = _summary(tmp_path, "--targets", "rto=90s")

    assert code == 1, lines
    assert lines[0] == f"drill {stopped.id} dc1→dc2→dc1: FAILED"
    assert (
        "  ✗ stopped early: switchover dc1→dc2 failed at step start-services/dc2/mta: "
        "port 2525 in use"
    ) in lines
    assert "active site: dc1 as sitectl recorded it" in lines
    assert f"  the engine says: {stopped.where}" in lines
    assert [line for line in lines if line.startswith("  → ")] == [
        f"  → {advice}" for advice in stopped.advice
    ]
    assert "targets: RTO 90 s (--targets), RPO 0 s (topology: policy.drill_targets)" in lines
    assert lines[-1] == f"report: {tmp_path / stopped.id / 'report.html'}"
    assert len(lines) <= SCREEN_LINES, "\n".join(lines)


def test_scripts_drill_ends_with_the_drill_so_its_last_line_is_the_report() -> None:
    script = Path(__file__).parents[2] / "scripts" / "drill"
    commands = [
        line.strip()
        for line in script.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    # Whatever follows the drill would push its `report:` line off the end.
    assert commands[-1].startswith("exec sitectl drill --to dc2 --failback"), commands[-1]
