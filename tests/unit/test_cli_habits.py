"""CLI habits operators bring from patronictl, terraform and kubectl (issue 20 item 6):
`--version`, and what changing verbs refuse without a terminal. No servers."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from orchestrator.cli.main import app

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _declared_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def test_version_is_the_package_s_and_needs_no_topology() -> None:
    done = runner.invoke(app, ["--version"], env={"SITECTL_CONFIG": "/nonexistent.yaml"})
    assert done.exit_code == 0, done.output
    assert done.stdout == f"sitectl {_declared_version()}\n"


def test_the_installed_script_prints_its_version() -> None:
    sitectl = Path(sys.executable).with_name("sitectl")
    done = subprocess.run([str(sitectl), "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"sitectl {_declared_version()}"
