"""The inventory as Ansible reads it: INI files, directories with group_vars/ and
host_vars/, dynamic inventories, and the plain YAML read directly giving Ansible's answer.

Every reading here is the real `ansible-inventory` of the venv's ansible-core; the
topology is the Zimbra example's, validated through the CLI as an operator would.
"""

from __future__ import annotations

import json
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.adapters.inventory import (
    Inventory,
    InventoryError,
    read_inventory,
    read_with_ansible,
)
from orchestrator.cli.main import app
from orchestrator.config import load_topology
from orchestrator.inventory import render_inventory_text

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A copy of the example (topology, PKI, playbooks) whose inventory is to be written."""
    for name in ("pki", "playbooks"):
        shutil.copytree(EXAMPLE / name, tmp_path / name)
    shutil.copy(EXAMPLE / "hosts.yml", tmp_path / "hosts.yml")
    shutil.copy(EXAMPLE / "topology.yaml", tmp_path / "topology.yaml")
    return tmp_path


def use_inventory(example: Path, written: str) -> Path:
    topology = example / "topology.yaml"
    text = topology.read_text().replace("  inventory: hosts.yml", f"  inventory: {written}")
    topology.write_text(text)
    return topology


def as_ini(inventory: Inventory, *, skip: str = "") -> str:
    """The same groups as an INI inventory (host vars on the host's first line)."""
    lines, placed = [], set()
    for group, hosts in sorted(inventory.groups.items()):
        if group in {"all", "ungrouped"}:
            continue
        lines.append(f"[{group}]")
        for host in sorted(hosts - {skip}):
            values = inventory.host_vars.get(host, {}) if host not in placed else {}
            lines.append(" ".join([host, *(f"{k}={v}" for k, v in values.items())]))
            placed.add(host)
    return "\n".join(lines) + "\n"


def validate(topology: Path) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["validate", "-c", str(topology)])
    return result.exit_code, result.output


def test_the_plain_yaml_read_directly_is_what_ansible_reads() -> None:
    # The example's inventory, which is `sitectl inventory`'s of its topology (as the lab's).
    generated = EXAMPLE / "hosts.yml"
    direct = read_inventory(generated)
    by_ansible = read_with_ansible(generated)
    assert direct.groups == by_ansible.groups
    assert {h: dict(v) for h, v in direct.host_vars.items()} == {
        h: dict(v) for h, v in by_ansible.host_vars.items()
    }
    topo = load_topology(EXAMPLE / "topology.yaml")
    assert render_inventory_text(topo).split("\n", 2)[2] in generated.read_text()


def test_an_ini_inventory_validates_and_a_missing_host_is_named(example: Path) -> None:
    inventory = read_inventory(example / "hosts.yml")
    (example / "hosts.ini").write_text(as_ini(inventory))
    topology = use_inventory(example, "hosts.ini")
    assert validate(topology) == (0, validate(topology)[1])
    assert read_inventory(example / "hosts.ini").groups["dc2_mailbox"] == {"mbox1.dc2", "mbox2.dc2"}

    (example / "hosts.ini").write_text(as_ini(inventory, skip="mbox2.dc2"))
    code, output = validate(topology)
    assert code == 2
    assert "host 'mbox2.dc2' is not in group 'dc2_mailbox' of hosts.ini" in output


def test_a_directory_with_group_vars_gives_its_variables_to_the_hosts(example: Path) -> None:
    inventory = read_inventory(example / "hosts.yml")
    directory = example / "inventory"
    (directory / "group_vars").mkdir(parents=True)
    (directory / "host_vars").mkdir()
    (directory / "10-hosts.ini").write_text(as_ini(inventory))
    (directory / "group_vars" / "dc2.yml").write_text("fence_user: ops-dc2\n")
    (directory / "host_vars" / "mta1.dc2.yml").write_text("fence_user: mta-only\n")

    read = read_inventory(directory)
    assert read.host_vars["mbox1.dc2"]["fence_user"] == "ops-dc2"
    assert read.host_vars["mta1.dc2"]["fence_user"] == "mta-only"  # host_vars wins
    assert "fence_user" not in read.host_vars["mbox1.dc1"]
    assert validate(use_inventory(example, "inventory"))[0] == 0


def test_group_vars_beside_a_yaml_file_are_read_as_ansible_does(example: Path) -> None:
    (example / "group_vars").mkdir()
    (example / "group_vars" / "dc1_mta.yml").write_text("fence_user: mta-dc1\n")
    read = read_inventory(example / "hosts.yml")
    assert read.host_vars["mta1.dc1"]["fence_user"] == "mta-dc1"
    assert read.host_vars["mta1.dc1"]["ansible_host"] == "192.0.2.11"


def test_a_dynamic_inventory_script_is_run_and_checked(example: Path) -> None:
    inventory = read_inventory(example / "hosts.yml")
    listing = {
        group: {"hosts": sorted(hosts)}
        for group, hosts in inventory.groups.items()
        if group not in {"all", "ungrouped"}
    }
    listing["_meta"] = {"hostvars": {h: dict(v) for h, v in inventory.host_vars.items()}}
    script = example / "cmdb.py"
    script.write_text(
        "#!/usr/bin/env python3\nimport json, sys\n"
        f"print(json.dumps({json.dumps(listing)}) if '--list' in sys.argv else '{{}}')\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    assert read_inventory(script).groups["dc1_mta"] == {"mta1.dc1", "mta2.dc1"}
    assert validate(use_inventory(example, "cmdb.py"))[0] == 0


def test_an_inventory_ansible_cannot_read_is_one_line_and_changes_nothing(example: Path) -> None:
    (example / "hosts.ini").write_text("[dc1_mta\nmta1.dc1\n")
    topology = use_inventory(example, "hosts.ini")
    before = sorted(p.name for p in example.iterdir())
    with pytest.raises(InventoryError, match="ini"):
        read_inventory(example / "hosts.ini")

    code, output = validate(topology)
    assert code == 2
    (line,) = [ln for ln in output.splitlines() if "inventory" in ln]
    assert line.startswith(f"{topology}:")
    assert "ansible.inventory: Ansible cannot read hosts.ini" in line
    assert "regenerate it with `sitectl inventory -o FILE`" in line
    assert sorted(p.name for p in example.iterdir()) == before
