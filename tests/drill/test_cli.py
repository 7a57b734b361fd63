"""`sitectl drill` refuses bad input before touching anything; `drill history` lists
recorded drills. No servers: input errors stop before the first connection."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from orchestrator.cli import drill
from orchestrator.drill import report
from tests.drill.recorded import drill as recorded
from tests.drill.recorded import leg

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
