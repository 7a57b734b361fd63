"""Is each playbook the topology uses there, and is it a playbook? Checked when a topology
is loaded (`validate` and every command), so a missing or broken playbook is refused
before a move starts instead of failing its first host step.

Cheap on purpose (a read and a YAML parse, milliseconds): ansible-playbook's own
`--syntax-check` costs a second a run and is `evaluate`'s (evaluate/playbooks.py). Which
playbooks: `playbooks_used` over every plan the topology allows, plus every custom
step's playbook (a drill-only step is in none of those plans).
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.config.model import INSTALLED_PLAYBOOKS, Topology
from orchestrator.config.problems import FieldPath
from orchestrator.evaluate.playbooks import playbook_problem, playbooks_used
from orchestrator.plan.build import PlanRefused, every_plan


def playbook_findings(topo: Topology) -> list[tuple[FieldPath, str]]:
    """(field, what is wrong — how to fix it) for each playbook the topology uses that
    is missing or no playbook: for the loader (config.load_topology's `checks`)."""
    custom = {
        topo.resolve(step.playbook): ("custom_steps", index, "playbook")
        for index, step in enumerate(topo.custom_steps)
        if step.playbook is not None
    }
    directory_problem = _directory_problem(topo)
    if directory_problem is not None:
        findings = [(("ansible", "playbook_dir"), directory_problem)]
        ours: list[Path] = []
    else:
        findings = []
        ours = [p for p in _used(topo) if p not in custom]
    for path in ours:
        problem = playbook_problem(path)
        if problem is not None:
            findings.append((("ansible", "playbook_dir"), f"{problem} — {_our_fix(topo, path)}"))
    for path, field in custom.items():
        problem = playbook_problem(path)
        if problem is not None:
            where = ".".join(map(str, field))
            findings.append((field, f"{problem} — fix it, or point {where} at a playbook"))
    return findings


def _used(topo: Topology) -> list[Path]:
    if len(topo.datacenters()) != 2:
        return []  # refused by the topology's own checks
    try:
        plans = every_plan(topo)
    except PlanRefused:  # a topology the planner refuses says so when it is planned
        return []
    return list(dict.fromkeys(p for plan in plans for p in playbooks_used(topo, plan)))


def _directory_problem(topo: Topology) -> str | None:
    """One line for a playbook_dir that is no directory at all, rather than one per
    playbook it lacks."""
    directory = topo.playbook_dir
    if directory.is_dir():
        return None
    return f"directory {directory} does not exist — {_our_fix(topo, None)}"


def _our_fix(topo: Topology, playbook: Path | None) -> str:
    """How to fix one of sitectl's own playbooks (`playbook`; None: the whole dir)."""
    if topo.ansible.playbook_dir is None:
        # The installed copy itself: only a broken installation gets here.
        return f"reinstall sitectl (its playbooks belong in {INSTALLED_PLAYBOOKS})"
    if playbook is None:
        return (
            "point ansible.playbook_dir at a copy of sitectl's playbooks (relative to the "
            "topology file), or remove it to use those installed with sitectl"
        )
    return (
        f"restore it from {INSTALLED_PLAYBOOKS / playbook.name}, or remove "
        "ansible.playbook_dir to use the playbooks installed with sitectl"
    )
