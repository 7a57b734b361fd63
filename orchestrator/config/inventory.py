"""The check that the Ansible inventory a topology names lists its hosts in the groups
sitectl targets: `<site>_<role>` (e.g. `dc2_mta`). An operator's own inventory may hold
anything else as long as those groups list the topology's hosts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from orchestrator.config.model import Topology
from orchestrator.config.problems import FieldPath

Finding = tuple[FieldPath, str]


def group_name(site: str, role: str | None = None) -> str:
    # Ansible warns about dashes in group names; sites and roles may contain them.
    name = site if role is None else f"{site}_{role}"
    return name.replace("-", "_")


def groups_in(inventory: Any) -> dict[str, set[str]]:
    """Group name → host names, from an Ansible YAML inventory (children followed)."""
    groups: dict[str, set[str]] = {}

    def visit(name: str, body: Any) -> set[str]:
        hosts = set((body or {}).get("hosts") or {}) if isinstance(body, dict) else set()
        children = (body or {}).get("children") or {} if isinstance(body, dict) else {}
        for child, child_body in children.items():
            hosts |= visit(child, child_body)
        groups.setdefault(name, set()).update(hosts)
        return hosts

    if isinstance(inventory, dict):
        for name, body in inventory.items():
            visit(name, body)
    return groups


def host_vars_in(inventory: Any) -> dict[str, dict[str, Any]]:
    """Host name → its variables, from an Ansible YAML inventory, merged as Ansible does:
    the vars of every group the host is in, shallower groups first and groups at one
    depth by name, then the host's own."""
    groups: dict[str, set[tuple[int, str]]] = {}
    own: dict[str, dict[str, Any]] = {}
    group_vars: dict[tuple[int, str], dict[str, Any]] = {}

    def visit(name: str, body: Any, depth: int, path: tuple[tuple[int, str], ...]) -> None:
        if not isinstance(body, dict):
            return
        here = (*path, (depth, name))
        group_vars[(depth, name)] = {
            **group_vars.get((depth, name), {}),
            **(body.get("vars") or {}),
        }
        for host, host_body in (body.get("hosts") or {}).items():
            groups.setdefault(host, set()).update(here)
            own[host] = {**own.get(host, {}), **(host_body or {})}
        for child, child_body in (body.get("children") or {}).items():
            visit(child, child_body, depth + 1, here)

    if isinstance(inventory, dict):
        for name, body in inventory.items():
            visit(name, body, 0, ())
    found: dict[str, dict[str, Any]] = {}
    for host, member_of in groups.items():
        merged: dict[str, Any] = {}
        for key in sorted(member_of):
            merged.update(group_vars[key])
        found[host] = {**merged, **own[host]}
    return found


def check_inventory(topo: Topology) -> Iterator[Finding]:
    try:
        path = topo.resolve(topo.ansible.inventory)
        if not path.is_file():
            return  # files.check_files reports a missing inventory
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        yield ("ansible", "inventory"), _not_yaml(topo, exc)
        return
    except (OSError, ValueError):
        return  # files.check_files reports a path that cannot be checked
    try:
        groups = groups_in(yaml.safe_load(text))
    except (yaml.YAMLError, ValueError, TypeError, RecursionError) as exc:
        yield ("ansible", "inventory"), _not_yaml(topo, exc)
        return
    for index, host in enumerate(topo.hosts):
        for role in host.roles:
            group = group_name(host.site, role)
            if host.name not in groups.get(group, set()):
                yield (
                    ("hosts", index, "name"),
                    (
                        f"host {host.name!r} is not in group {group!r} of {topo.ansible.inventory} "
                        "— regenerate the inventory with `sitectl inventory -o FILE`"
                    ),
                )


def _not_yaml(topo: Topology, exc: BaseException) -> str:
    return (
        f"{topo.ansible.inventory} is not a YAML inventory ({exc.__class__.__name__}) — "
        "regenerate it with `sitectl inventory -o FILE`"
    )
