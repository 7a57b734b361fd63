"""Loading a topology checks the playbooks a move would run (issue 21, item 1): they
exist and are playbooks, or `validate` (and every verb) refuses the file with one line
naming the file, the field and the fix, and changes nothing. The playbooks installed
with sitectl are the default; an explicit relative `playbook_dir` is the topology's."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

import orchestrator
from orchestrator.cli.main import app
from orchestrator.config import load_topology
from orchestrator.config.extras import collection_installed
from orchestrator.config.model import INSTALLED_PLAYBOOKS
from orchestrator.evaluate.findings import Outcome
from orchestrator.evaluate.playbooks import check_playbooks, playbook_problem

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra"
LINE = re.compile(r"^(?P<file>\S+):(?P<line>\d+): (?P<field>\S+): (?P<message>.+ — .+)$")
PLAYBOOK_DIR_LINE = "  inventory: hosts.yml\n"


def _example(tmp_path: Path, playbook_dir: str | None = None) -> Path:
    """A copy of the example in `tmp_path`, with `ansible.playbook_dir` set if given."""
    for name in ("hosts.yml", "pki", "playbooks"):
        source = EXAMPLE / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name)
        else:
            shutil.copy(source, tmp_path / name)
    text = (EXAMPLE / "topology.yaml").read_text(encoding="utf-8")
    assert text.count(PLAYBOOK_DIR_LINE) == 1
    if playbook_dir is not None:
        text = text.replace(
            PLAYBOOK_DIR_LINE, f"{PLAYBOOK_DIR_LINE}  playbook_dir: {playbook_dir}\n"
        )
    topology = tmp_path / "topology.yaml"
    topology.write_text(text, encoding="utf-8")
    return topology


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {
        str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
        for p in sorted(root.rglob("*"))
    }


def _refused(topology: Path) -> list[re.Match[str]]:
    """`validate`'s problem lines, asserting it refused with each line well formed."""
    before = _snapshot(topology.parent)
    result = CliRunner().invoke(app, ["validate", "-c", str(topology)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    matches = [LINE.match(line) for line in lines]
    assert all(matches), f"not FILE:LINE: field: what — fix:\n{result.output}"
    assert _snapshot(topology.parent) == before, "validate changed a file"
    return [m for m in matches if m]


# -- the check of one file ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("- hosts: all\n  tasks: [\n", "is not valid YAML at line 3"),
        ("hosts: all\ntasks: []\n", "it holds a dict, not a list of plays"),
        ("", "it holds nothing, not a list of plays"),
        ("- name: a task\n  ansible.builtin.debug: {}\n", "its item 1 is not a play"),
        ("- hosts: all\n- just text\n", "its item 2 is not a play"),
    ],
)
def test_a_file_that_is_no_playbook_is_named_with_why(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "p.yml"
    path.write_text(text)
    problem = playbook_problem(path)
    assert problem is not None and problem.startswith(f"{path} ") and says in problem, problem


def test_missing_files_and_directories_are_no_playbooks(tmp_path: Path) -> None:
    assert playbook_problem(tmp_path / "gone.yml") == f"{tmp_path / 'gone.yml'} does not exist"
    assert "is a directory" in str(playbook_problem(tmp_path))


@pytest.mark.parametrize(
    "text",
    [
        "- hosts: all\n  vars: {x: !unsafe '{{ not templated }}'}\n",  # Ansible's own tags
        "- ansible.builtin.import_playbook: other.yml\n- hosts: dc1_mta\n",
    ],
)
def test_what_ansible_reads_as_a_playbook_passes(tmp_path: Path, text: str) -> None:
    path = tmp_path / "p.yml"
    path.write_text(text)
    assert playbook_problem(path) is None


def test_every_installed_playbook_passes() -> None:
    found = sorted(INSTALLED_PLAYBOOKS.glob("*.yml"))
    assert {p.name for p in found} >= {"app.yml", "volume.yml", "dns-role.yml", "custom.yml"}
    assert {p.name: playbook_problem(p) for p in found} == {p.name: None for p in found}


def test_evaluate_judges_a_file_as_loading_does_before_any_syntax_check(tmp_path: Path) -> None:
    """A controller evaluates long after it loaded its topology: a playbook broken since
    is named as validate would name it (no ansible-playbook run for it)."""
    path = tmp_path / "volume.yml"
    path.write_text("hosts: all\ntasks: []\n")
    (found,) = check_playbooks([path])
    assert found.outcome is Outcome.PROBLEM, found
    assert found.reason == (
        f"{playbook_problem(path)} — a move runs it: restore it or fix ansible.playbook_dir"
    )


# -- where the playbooks are -------------------------------------------------------------


def test_the_default_is_the_copy_installed_with_sitectl(tmp_path: Path) -> None:
    topo = load_topology(_example(tmp_path))
    assert topo.ansible.playbook_dir is None
    # Beside the code that runs, not beside the topology file or the working directory.
    assert topo.playbook_dir == Path(orchestrator.__file__).parent / "playbooks"
    assert (topo.playbook_dir / "volume.yml").is_file()


def test_a_relative_playbook_dir_is_the_topology_files_whatever_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(INSTALLED_PLAYBOOKS, tmp_path / "mine")
    topology = _example(tmp_path, "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    result = CliRunner().invoke(app, ["validate", "-c", os.path.relpath(topology)])
    assert result.exit_code == 0, result.output
    assert load_topology(topology).playbook_dir == tmp_path / "mine"


# -- validate refuses, one line each, changing nothing --------------------------------------


def test_a_playbook_dir_that_does_not_exist_is_one_line(tmp_path: Path) -> None:
    topology = _example(tmp_path, "/nonexistent")
    (problem,) = _refused(topology)
    assert problem["file"] == str(topology)
    assert problem["field"] == "ansible.playbook_dir"
    lines = topology.read_text().splitlines()
    assert lines[int(problem["line"]) - 1] == "  playbook_dir: /nonexistent"
    assert problem["message"].startswith("directory /nonexistent does not exist — ")
    assert "remove it to use those installed with sitectl" in problem["message"]


def test_a_missing_and_a_broken_playbook_in_playbook_dir_are_each_named(tmp_path: Path) -> None:
    shutil.copytree(INSTALLED_PLAYBOOKS, tmp_path / "mine")
    (tmp_path / "mine" / "app.yml").unlink()
    (tmp_path / "mine" / "volume.yml").write_text("- hosts: all\n  tasks: [\n")
    problems = _refused(_example(tmp_path, "mine"))
    assert [p["field"] for p in problems] == ["ansible.playbook_dir"] * 2
    messages = sorted(p["message"] for p in problems)
    assert messages[0].startswith(f"{tmp_path / 'mine' / 'app.yml'} does not exist — restore it")
    assert messages[1].startswith(f"{tmp_path / 'mine' / 'volume.yml'} is not valid YAML")


def test_a_custom_steps_playbook_that_does_not_parse_names_its_field(tmp_path: Path) -> None:
    topology = _example(tmp_path)
    custom = tmp_path / "playbooks" / "zimbra-move-identity.yml"
    custom.write_text("- name: a task file, not a playbook\n  ansible.builtin.debug: {}\n")
    (problem,) = _refused(topology)
    assert problem["field"] == "custom_steps.0.playbook"
    lines = topology.read_text().splitlines()
    assert "playbook: playbooks/zimbra-move-identity.yml" in lines[int(problem["line"]) - 1]
    assert problem["message"].startswith(f"{custom} is not a playbook: its item 1 is not a play")


def test_every_verb_refuses_what_validate_refuses(tmp_path: Path) -> None:
    """A switchover with no playbooks stops at loading, before anything is asked or
    run: the failure the issue met at the first host step of a real move."""
    topology = _example(tmp_path, "/nonexistent")
    before = _snapshot(tmp_path)
    result = CliRunner().invoke(
        app, ["switchover", "--to", "dc2", "--yes", "-r", "test", "-c", str(topology)]
    )
    assert result.exit_code == 2, result.output
    assert "ansible.playbook_dir: directory /nonexistent does not exist" in result.output
    assert _snapshot(tmp_path) == before


# -- the netapp extra ----------------------------------------------------------------------


def test_a_collection_is_found_under_a_collections_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As ansible-galaxy installs one: <path>/ansible_collections/<namespace>/<name>."""
    assert not collection_installed("acme.widgets")
    (tmp_path / "ansible_collections" / "acme" / "widgets").mkdir(parents=True)
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", f"/nonexistent:{tmp_path}")
    assert collection_installed("acme.widgets")
    monkeypatch.setenv("ANSIBLE_COLLECTIONS_PATH", str(tmp_path / "ansible_collections"))
    assert collection_installed("acme.widgets")


def test_this_venv_has_the_netapp_extra_its_tests_need() -> None:
    """scripts/install installs sitectl[netapp] for the netapp tests (the example's
    volumes are netapp ones, and validate refuses them without it: see
    tests/lab/test_wheel.py for a sitectl installed without it)."""
    assert collection_installed("netapp.ontap")
