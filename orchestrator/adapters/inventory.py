"""The Ansible inventory as Ansible itself reads it: groups and each host's variables.

An operator's inventory may be a YAML or INI file, a directory of them with
`group_vars/` and `host_vars/`, or a dynamic inventory (a script or a plugin's
configuration). sitectl reads every such form through `ansible-inventory --list`, the
same ansible-core that runs the playbooks, so what validate checks is what a step will
target.

One form is read directly: a plain YAML file (no inventory plugin, no host ranges) with
no `group_vars/` or `host_vars/` beside it, which is what `sitectl inventory` and the lab
write. ansible-inventory's answer for it is the file itself; reading it here saves half a
second of ansible-core on every command that loads the topology (a test compares the two
readings).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.childenv import command_env
from orchestrator.config.inventory import Finding, groups_in, host_vars_in, missing_from_groups
from orchestrator.config.model import Topology
from orchestrator.errors import Failed

TIMEOUT = 60.0  # a dynamic inventory may ask a cloud API; a static one takes half a second
# Beside an inventory file, Ansible reads these directories too (the host_group_vars
# vars plugin): their variables reach the hosts, so the file alone is not the answer.
VARS_DIRS = ("group_vars", "host_vars")
_PLUGIN_FAILURE = re.compile(r"Failed to parse inventory with '([\w.]+)' plugin: (.*)")


class InventoryError(Failed):
    """Ansible cannot read the inventory; the message is Ansible's reason, on one line."""


@dataclass(frozen=True)
class Inventory:
    groups: Mapping[str, frozenset[str]]  # every group → its hosts, children's included
    host_vars: Mapping[str, Mapping[str, Any]]  # every host → its variables, merged

    def hosts_of(self, group: str) -> frozenset[str]:
        return self.groups.get(group, frozenset())


def read_inventory(path: Path, *, timeout: float = TIMEOUT) -> Inventory:
    """The inventory at `path` (a file, a directory or a script), as Ansible reads it."""
    plain = _plain_yaml(path)
    if plain is not None:
        groups = {name: frozenset(hosts) for name, hosts in groups_in(plain).items()}
        everyone = frozenset().union(*groups.values())
        grouped = frozenset().union(*(h for g, h in groups.items() if g != "all"))
        # Ansible's two implicit groups: every host, and those in no group of their own.
        groups |= {"all": everyone, "ungrouped": everyone - grouped}
        return Inventory(groups, host_vars_in(plain))
    return read_with_ansible(path, timeout=timeout)


def inventory_findings(topo: Topology) -> list[Finding]:
    """validate's check of the inventory: Ansible can read it, and the groups sitectl
    targets list the topology's hosts."""
    written = topo.ansible.inventory
    try:
        path = topo.resolve(written)
        if not path.exists():
            return []  # config.files says it is missing
    except (OSError, ValueError):
        return []  # config.files says why the path cannot be checked
    try:
        inventory = read_inventory(path)
    except InventoryError as exc:
        return [
            (
                ("ansible", "inventory"),
                f"Ansible cannot read {written}: {exc} — fix it, or regenerate it with "
                "`sitectl inventory -o FILE`",
            )
        ]
    return list(missing_from_groups(topo, inventory.groups))


def read_with_ansible(path: Path, *, timeout: float = TIMEOUT) -> Inventory:
    """`ansible-inventory --list` of `path`; a source it cannot parse is an error (not the
    warning and empty inventory Ansible falls back to)."""
    env = command_env({"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED": "True", "ANSIBLE_NOCOLOR": "1"})
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    command = shutil.which("ansible-inventory", path=env["PATH"])
    if command is None:
        raise InventoryError("ansible-inventory is not installed (it comes with ansible-core)")
    try:
        done = subprocess.run(
            [command, "-i", str(path), "--list"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            cwd=path.parent if path.parent.is_dir() else None,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InventoryError(f"ansible-inventory gave no answer in {timeout:g} s") from None
    except OSError as exc:
        raise InventoryError(f"ansible-inventory cannot run: {exc.strerror or exc}") from None
    if done.returncode != 0:
        raise InventoryError(_reason(done.stderr))
    try:
        listed = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise InventoryError(f"ansible-inventory printed no JSON ({exc.msg})") from None
    return from_listing(listed)


def from_listing(listed: Mapping[str, Any]) -> Inventory:
    """The `ansible-inventory --list` JSON as groups (children followed) and host vars."""
    direct: dict[str, set[str]] = {}
    children: dict[str, list[str]] = {}
    for name, body in listed.items():
        if name == "_meta" or not isinstance(body, dict):
            continue
        direct[name] = set(body.get("hosts") or ())
        children[name] = list(body.get("children") or ())
    resolved: dict[str, frozenset[str]] = {}

    def members(name: str, seen: frozenset[str]) -> frozenset[str]:
        if name in resolved:
            return resolved[name]
        found = set(direct.get(name, ()))
        for child in children.get(name, ()):
            if child not in seen:  # Ansible refuses loops; never recurse into one here
                found |= members(child, seen | {child})
        resolved[name] = frozenset(found)
        return resolved[name]

    for name in direct:
        members(name, frozenset({name}))
    meta = listed.get("_meta") or {}
    host_vars = {host: dict(values or {}) for host, values in (meta.get("hostvars") or {}).items()}
    for host in resolved.get("all", frozenset()):
        host_vars.setdefault(host, {})
    return Inventory(resolved, host_vars)


def _plain_yaml(path: Path) -> Any | None:
    """The parsed file, when Ansible's answer for it would be the file itself; else None."""
    if path.suffix not in {".yml", ".yaml"} or not path.is_file():
        return None
    if any((path.parent / name).exists() for name in VARS_DIRS):
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None  # Ansible's own message says what is wrong
    if not isinstance(data, dict) or "plugin" in data:
        return None  # a plugin's configuration (a cloud's inventory): only Ansible knows
    if any("[" in str(host) for hosts in groups_in(data).values() for host in hosts):
        return None  # host ranges (web[01:10]) are Ansible's to expand
    return data


def _reason(stderr: str) -> str:
    """Ansible's reason, one line: each plugin's complaint, else its last error line."""
    complaints = [f"{m[1]}: {m[2].strip()}" for m in _PLUGIN_FAILURE.finditer(stderr)]
    if complaints:
        return "; ".join(dict.fromkeys(complaints))
    lines = [" ".join(line.split()) for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("[ERROR]")]
    return (errors or lines or ["ansible-inventory failed and said nothing"])[-1]
