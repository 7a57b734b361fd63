"""The lab inventory drives real playbooks through ansible-runner."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import ansible_runner
import pytest

from tests.conftest import LabHandle

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def test_a_playbook_runs_on_every_site_and_role(lab: LabHandle, tmp_path: Path) -> None:
    active, standby = lab.active_site(), lab.standby_site()
    venv_bin = str(Path(sys.executable).parent)
    # ansible-runner looks ansible-playbook up on PATH: the venv's bin must come first.
    path = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
    result = ansible_runner.run(
        private_data_dir=str(tmp_path),
        playbook=str(REPO / "tests" / "lab" / "playbooks" / "smoke.yml"),
        # The inventory `lab up` wrote: self-contained, every host over SSH, keys checked.
        inventory=str(lab.state_dir / "hosts.yml"),
        envvars={"PATH": path},
        extravars={"active": active, "standby": standby},
        quiet=True,
    )
    assert result.status == "successful", result.stdout.read()
    stats = result.stats
    expected = {f"{active}-mta", f"{active}-mailbox", f"{standby}-mta", f"{active}-storage"}
    assert set(stats["ok"]) == expected
    assert not stats["failures"] and not stats["dark"]
