"""Every playbook and task file parses, and ansible-lint passes on orchestrator/playbooks/.

The NetApp tasks cannot run here (no ONTAP cluster), so parsing and linting are what
keeps them honest. They use the netapp.ontap collection, which the ``ansible`` package
(a runtime dependency) ships: a venv without it fails here, never skips, since a syntax
check that cannot resolve a module proves nothing about its arguments.
``include_tasks`` is dynamic: ``--syntax-check`` does not open the file it names, so each
task file is also checked through a wrapper play that imports it statically.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.config.model import INSTALLED_PLAYBOOKS

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = INSTALLED_PLAYBOOKS
BIN = Path(sys.executable).parent
PLAYBOOK_FILES = sorted(PLAYBOOKS.glob("*.yml"))
TASK_FILES = sorted((PLAYBOOKS / "tasks").rglob("*.yml"))
# The examples' own playbooks (custom_steps), templates an operator copies: they must
# parse and lint like ours.
EXAMPLE_PLAYBOOKS = sorted((ROOT / "inventories").glob("*/playbooks/*.yml"))
LINT_TIMEOUT_S = 120
NETAPP_TASKS = PLAYBOOKS / "tasks" / "netapp.yml"
# A task's module key, e.g. "    netapp.ontap.na_ontap_snapmirror:".
NETAPP_MODULE = re.compile(r"^\s*(netapp\.ontap\.\w+):", re.M)


def _env(tmp_path: Path) -> dict[str, str]:
    # Ansible's temp and cache dirs under the test's tmp dir, not the user's home.
    return {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
        # What ansible finds beside a playbook in orchestrator/playbooks/; the wrapper plays below
        # live elsewhere.
        "ANSIBLE_ACTION_PLUGINS": str(PLAYBOOKS / "action_plugins"),
        "ANSIBLE_LIBRARY": str(PLAYBOOKS / "library"),
    }


def syntax_problem(playbook: Path, tmp_path: Path, named: Path | None = None) -> str | None:
    """None if `playbook` parses; otherwise a message naming the file at fault."""
    run = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "localhost,", str(playbook)],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
        check=False,
    )
    if run.returncode == 0:
        return None
    shown = named or playbook
    where = shown.relative_to(ROOT) if shown.is_relative_to(ROOT) else shown
    return f"{where} does not parse (ansible-playbook --syntax-check):\n{run.stdout}{run.stderr}"


def wrapper_for(task_file: Path, tmp_path: Path) -> Path:
    """A play that imports `task_file` statically, so the syntax check opens it."""
    play = tmp_path / f"import-{task_file.stem}.yml"
    play.write_text(
        "- name: Parse one task file\n"
        "  hosts: all\n"
        "  gather_facts: false\n"
        "  tasks:\n"
        f"    - ansible.builtin.import_tasks: {task_file}\n"
    )
    return play


def test_the_files_to_check_are_found() -> None:
    # A moved directory must fail here, not turn the checks below into nothing.
    assert {p.name for p in PLAYBOOK_FILES} >= {"app.yml", "dns-role.yml", "volume.yml"}
    assert {p.name for p in EXAMPLE_PLAYBOOKS} >= {"zimbra-move-identity.yml"}
    assert PLAYBOOKS / "tasks" / "netapp.yml" in TASK_FILES


def netapp_module_docs(tmp_path: Path) -> tuple[list[str], dict[str, Any]]:
    """The netapp.ontap modules netapp.yml uses, and the docs ansible-doc finds for them."""
    used = sorted(set(NETAPP_MODULE.findall(NETAPP_TASKS.read_text())))
    run = subprocess.run(
        [str(BIN / "ansible-doc"), "--json", "-t", "module", *used],
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=120,
        check=False,
    )
    docs = json.loads(run.stdout or "{}")
    missing = [m for m in used if m not in docs]
    assert not missing, (
        f"orchestrator/playbooks/tasks/netapp.yml uses {', '.join(missing)}, which this venv cannot "
        f"resolve: install sitectl's dependencies (the ansible package ships netapp.ontap)"
        f"\n{run.stderr}"
    )
    return used, docs


def unknown_options(args: dict[str, Any], options: dict[str, Any], where: str) -> list[str]:
    """`where.key` for each key of `args` that `options` (ansible-doc's) does not name."""
    known = {name: spec for name, spec in options.items()}
    for spec in options.values():
        known |= {alias: spec for alias in spec.get("aliases") or []}
    found = []
    for key, value in args.items():
        if key not in known:
            found.append(f"{where}.{key}")
        elif isinstance(value, dict) and known[key].get("suboptions"):
            found += unknown_options(value, known[key]["suboptions"], f"{where}.{key}")
    return found


def netapp_tasks(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every task of `tasks`, blocks opened (block, rescue, always)."""
    found = []
    for task in tasks:
        found.append(task)
        for part in ("block", "rescue", "always"):
            found += netapp_tasks(task.get(part) or [])
    return found


def test_the_netapp_ontap_modules_resolve(tmp_path: Path) -> None:
    used, _ = netapp_module_docs(tmp_path)
    assert "netapp.ontap.na_ontap_snapmirror" in used


def test_the_netapp_tasks_pass_only_options_the_modules_have(tmp_path: Path) -> None:
    # Neither --syntax-check nor ansible-lint checks a collection module's options when
    # its values are templated, and nothing here can run them against ONTAP.
    used, docs = netapp_module_docs(tmp_path)
    options = {m: docs[m]["doc"]["options"] for m in used}
    unknown = []
    for task in netapp_tasks(yaml.safe_load(NETAPP_TASKS.read_text())):
        for module in used:
            if module in task:
                unknown += unknown_options(task[module], options[module], task["name"])
        for group, defaults in (task.get("module_defaults") or {}).items():
            assert group == "group/netapp.ontap.netapp_ontap", group
            for module in used:
                unknown += unknown_options(defaults, options[module], f"{group} for {module}")
    assert not unknown, f"options the netapp.ontap modules do not have: {unknown}"


@pytest.mark.parametrize(
    "playbook", PLAYBOOK_FILES + EXAMPLE_PLAYBOOKS, ids=lambda p: str(p.relative_to(ROOT))
)
def test_playbook_parses(playbook: Path, tmp_path: Path) -> None:
    problem = syntax_problem(playbook, tmp_path)
    assert problem is None, problem


@pytest.mark.parametrize("task_file", TASK_FILES, ids=lambda p: str(p.relative_to(PLAYBOOKS)))
def test_task_file_parses(task_file: Path, tmp_path: Path) -> None:
    problem = syntax_problem(wrapper_for(task_file, tmp_path), tmp_path, named=task_file)
    assert problem is None, problem


def test_a_broken_task_file_is_named(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "- name: Two actions in one task\n  ansible.builtin.shell: x\n"
        "  ansible.builtin.command: y\n"
    )
    problem = syntax_problem(wrapper_for(broken, tmp_path), tmp_path, named=broken)
    assert problem is not None and str(broken) in problem


def test_ansible_lint_passes(tmp_path: Path) -> None:
    lint = BIN / "ansible-lint"
    # A test extra: a venv without it was not installed as CI installs (fail, never skip).
    assert lint.exists(), "ansible-lint is not in this venv: pip install -e '.[test]'"
    run = subprocess.run(
        [
            str(lint),
            "-c",
            str(ROOT / ".ansible-lint"),
            "--offline",
            "--nocolor",
            "-f",
            "pep8",
            str(PLAYBOOKS.relative_to(ROOT)),
            *(str(p.relative_to(ROOT)) for p in EXAMPLE_PLAYBOOKS),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=LINT_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, (
        f"ansible-lint found problems in orchestrator/playbooks/ or an example's:\n{run.stdout}{run.stderr}"
    )


def test_every_ontap_change_is_preceded_by_the_epoch_check() -> None:
    """ONTAP cannot check our epoch, so each task that changes a relationship must come
    right after a sitectl_lease task asked under the same condition: a check that could
    be skipped while its call runs would be no fence."""
    block = yaml.safe_load(NETAPP_TASKS.read_text())[0]["block"]
    changes = [
        (index, task)
        for index, task in enumerate(block)
        if any(k.startswith("netapp.ontap.") for k in task)
        and "netapp.ontap.na_ontap_rest_info" not in task
    ]
    assert len(changes) == 4, [task["name"] for _, task in changes]
    for index, task in changes:
        check = block[index - 1]
        assert "sitectl_lease" in check, f"no epoch check right before {task['name']!r}"
        assert check["sitectl_lease"]["epoch"] == "{{ sitectl_epoch }}"
        assert check["when"].endswith(f"({task['when']})"), (check["when"], task["when"])
