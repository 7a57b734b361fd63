"""Every playbook and task file parses, and ansible-lint passes on playbooks/.

The NetApp tasks cannot run here (no ONTAP cluster), so parsing and linting are what
keeps them honest. ``include_tasks`` is dynamic: ``--syntax-check`` does not open the
file it names, so each task file is also checked through a wrapper play that imports it
statically.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
BIN = Path(sys.executable).parent
PLAYBOOK_FILES = sorted(PLAYBOOKS.glob("*.yml"))
TASK_FILES = sorted((PLAYBOOKS / "tasks").rglob("*.yml"))
LINT_TIMEOUT_S = 120


def _env(tmp_path: Path) -> dict[str, str]:
    # Ansible's temp and cache dirs under the test's tmp dir, not the user's home.
    return {
        **os.environ,
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_HOME": str(tmp_path / "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
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
    assert PLAYBOOKS / "tasks" / "netapp.yml" in TASK_FILES


@pytest.mark.parametrize("playbook", PLAYBOOK_FILES, ids=lambda p: p.name)
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
    if not lint.exists():
        pytest.skip("ansible-lint is not installed in this venv (pip install -e '.[test]')")
    run = subprocess.run(
        [
            str(lint),
            "-c",
            str(ROOT / ".ansible-lint"),
            "--offline",
            "--nocolor",
            "-f",
            "pep8",
            "playbooks/",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=LINT_TIMEOUT_S,
        check=False,
    )
    assert run.returncode == 0, (
        f"ansible-lint found problems in playbooks/:\n{run.stdout}{run.stderr}"
    )
