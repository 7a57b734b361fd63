"""`sitectl lab` commands on a state dir with no lab, or with a recorded lab whose servers
are not running: what they print and what they leave behind. No servers are started."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.lab import layout, volumes
from orchestrator.lab.state import Component, LabState
from orchestrator.storage import statefile
from orchestrator.storage.relationship import MirrorState, Relationship

runner = CliRunner()


def _lab(args: list[str], state_dir: Path):
    return runner.invoke(app, ["lab", *args, "--state-dir", str(state_dir)])


@pytest.mark.parametrize(
    "args",
    [
        ["kill-site", "dc1"],
        ["pause-site", "dc2"],
        ["heal-site", "witness"],
        ["env"],
        ["env", "--json"],
        ["status"],
        ["status", "--json"],
    ],
)
def test_no_lab_is_one_line_and_creates_nothing(args: list[str], tmp_path: Path) -> None:
    state_dir = tmp_path / "new"
    result = _lab(args, state_dir)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert result.stderr == f"sitectl lab: no lab in {state_dir} — run `sitectl lab up` first\n"
    assert not state_dir.exists()


def _recorded_lab(root: Path, writable: str) -> None:
    """A lab on record (as after `lab down`): one component, the mail mirror's state."""
    root.mkdir(parents=True)
    state = LabState(root=root)
    state.components["dc1-zookeeper"] = Component(
        name="dc1-zookeeper",
        site="dc1",
        kind="zookeeper",
        address="127.0.1.1:2181",
        argv=["/bin/false"],
        cwd=str(root),
        log=str(root / "zk.log"),
    )
    state.save()
    source, destination = "dc1", "dc2"
    mirror_state = MirrorState.BROKEN if writable == destination else MirrorState.MIRRORED
    statefile.save(
        volumes.mirror_config(state).state_file,
        Relationship(
            name=volumes.MIRROR, source=source, destination=destination, state=mirror_state
        ),
    )


@pytest.mark.parametrize("writable", ["dc1", "dc2"])
def test_env_json_names_the_site_the_lab_serves_from_now(writable: str, tmp_path: Path) -> None:
    # After a failover the mirror is broken and dc2's copy is the writable one: that is
    # where the application runs, whatever site `lab up` started with.
    root = tmp_path / "lab"
    _recorded_lab(root, writable)
    result = _lab(["env", "--json"], root)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["active_site"] == writable
    assert layout.ACTIVE_SITE == "dc1"  # so the dc2 case cannot pass on the constant


def test_json_and_errors_print_a_state_dir_as_written(tmp_path: Path) -> None:
    # rich would turn ":smile:" into an emoji and wrap long lines; scripts need the bytes.
    root = tmp_path / "x:smile:y"
    _recorded_lab(root, "dc1")
    env = _lab(["env", "--json"], root)
    assert env.exit_code == 0, env.output
    described = json.loads(env.stdout)
    assert described["state_dir"] == str(root)
    assert described["topology"] == str(root / "topology.yaml")
    assert described["mail"]["password_file"].startswith(str(root))

    status = _lab(["status", "--json"], root)
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout) == [
        {
            "site": "dc1",
            "component": "dc1-zookeeper",
            "address": "127.0.1.1:2181",
            "pid": None,
            "state": "down",
            "wanted": True,
            "kind": "zookeeper",
        }
    ]

    exports = _lab(["env"], root)
    assert f"export SITECTL_LAB_DIR={shlex.quote(str(root))}\n" in exports.stdout

    missing = tmp_path / "no:smile:lab"
    refused = _lab(["kill-site", "dc1"], missing)
    assert refused.stderr == f"sitectl lab: no lab in {missing} — run `sitectl lab up` first\n"
