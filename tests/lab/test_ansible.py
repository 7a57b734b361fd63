"""The lab inventory drives real playbooks through ansible-runner."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import ansible_runner
import pytest
import yaml

from orchestrator.config.inventory import host_vars_in
from orchestrator.config.model import INSTALLED_PLAYBOOKS
from orchestrator.lab import layout
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


def _play(lab: LabHandle, tmp_path: Path, playbook: str, host: str, **extravars: object):
    venv_bin = str(Path(sys.executable).parent)
    private = tmp_path / f"run-{len(list(tmp_path.iterdir()))}"
    private.mkdir()
    run = ansible_runner.run(
        private_data_dir=str(private),
        playbook=str(INSTALLED_PLAYBOOKS / playbook),
        inventory=str(lab.state_dir / "hosts.yml"),
        envvars={"PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"},
        extravars={"sitectl_hosts": host, **extravars},
        quiet=True,
    )
    return run.status, run.stdout.read()


def test_app_and_dns_role_tasks_of_an_older_epoch_are_refused_on_the_host(
    lab: LabHandle, tmp_path: Path
) -> None:
    """What a task released by a frozen leader meets on the host once a newer leader
    acted there: the host's ledger refuses it and runs nothing. Idempotent actions on the
    standby (its MTA stopped, its DNS server a secondary) so the lab stays as it was."""
    standby = lab.standby_site()
    host_vars = host_vars_in(yaml.safe_load((lab.state_dir / "hosts.yml").read_text()))
    mta = f"{standby}-mta"
    stop_mta = {
        "app_action": "stop",
        "app_role": "mta",
        "app_services": ["postfix"],
        "app_commands": {"stop": f"{host_vars[mta]['lab_app']} stop --role mta"},
    }
    status, out = _play(lab, tmp_path, "app.yml", mta, sitectl_epoch=7, **stop_mta)
    assert status == "successful", out
    status, out = _play(lab, tmp_path, "app.yml", mta, sitectl_epoch=6, **stop_mta)
    assert status == "failed"
    assert "epoch 6 is stale: epoch 7 has already acted on role mta on this host" in out, out
    assert _play(lab, tmp_path, "app.yml", mta, sitectl_epoch=7, **stop_mta)[0] == "successful"
    ledger = lab.state_dir / standby / "epochs" / f"{mta}-app-mta.jsonl"
    assert [json.loads(line)["epoch"] for line in ledger.read_text().splitlines()] == [7, 7]

    dns = f"{standby}-dns"
    demote = {
        "dns_zone": layout.INTERNAL_ZONE,
        "dns_action": "demote",
        "dns_command": f"{host_vars[dns]['lab_dnsrole']} demote --zone "
        f"{layout.INTERNAL_ZONE} --primary {layout.service_ip(lab.active_site())}",
    }
    assert _play(lab, tmp_path, "dns-role.yml", dns, sitectl_epoch=9, **demote)[0] == "successful"
    status, out = _play(lab, tmp_path, "dns-role.yml", dns, sitectl_epoch=8, **demote)
    assert status == "failed"
    assert "epoch 8 is stale: epoch 9 has already acted on the role of zone" in out, out
