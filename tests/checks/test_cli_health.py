"""The health CLI's input handling, without servers."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from orchestrator.cli import health

app = typer.Typer()
health.register(app)
runner = CliRunner()


def test_an_invalid_topology_exits_2_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "topology.yaml"
    bad.write_text("cluster: Not A Name\n")
    for args in (["health"], ["readiness", "--to", "dc2"]):
        result = runner.invoke(app, [*args, "-c", str(bad)])
        assert result.exit_code == 2
        assert str(bad) in result.output


def test_unknown_site_and_system_are_bad_input() -> None:
    example = "inventories/example-zimbra/topology.yaml"
    assert runner.invoke(app, ["health", "-c", example, "--site", "mars"]).exit_code == 2
    assert runner.invoke(app, ["health", "-c", example, "--system", "nfs"]).exit_code == 2
    assert runner.invoke(app, ["readiness", "-c", example, "--to", "witness"]).exit_code == 2


def test_figures_hide_raw_csn_timestamps() -> None:
    assert health.figures_text({"csn_sid_1": 1.7e9, "lag_seconds": 2.5, "zxid": 4294967296.0}) == (
        "lag_seconds=2.5 zxid=4294967296"
    )
