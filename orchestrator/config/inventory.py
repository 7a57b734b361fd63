"""The Ansible inventory's shape, as pure functions: the groups sitectl targets
(`<site>_<role>`, e.g. `dc2_mta`), a YAML inventory's groups and host variables as Ansible
reads them, and the check that the groups list the topology's hosts. An operator's own
inventory may hold anything else as long as those groups list the topology's hosts.
Reading an inventory of any form (INI, directories, dynamic) is adapters.inventory's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Set
from typing import Any

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


def missing_from_groups(topo: Topology, groups: Mapping[str, Set[str]]) -> Iterator[Finding]:
    """Each topology host missing from a `<site>_<role>` group of the inventory as read."""
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
