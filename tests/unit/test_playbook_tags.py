"""sitectl leaves out, with --skip-tags, the tasks of our playbooks its call cannot run:
each costs a worker fork (~30 ms) even when its `when` skips it. Leaving one out must
never change what runs, so every tagged task's `when` must say exactly what its tag
does (as the whole `when`, or as one of a list's conditions, which Ansible ands); a person
running a playbook by hand still gets the guard.

Real ansible-playbook runs on a local host; the rest is pure."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.adapters.ansible import PlaybookCall, run_playbook, shared_skips
from orchestrator.config import Topology, load_topology
from orchestrator.config.model import INSTALLED_PLAYBOOKS, VOLUME_DRIVERS
from orchestrator.engine.executor import Executor
from orchestrator.engine.steps import default_handlers
from orchestrator.engine.steps.common import (
    APP_COMMANDS_TAG,
    APP_SERVICES_TAG,
    BY_HAND_TAG,
    TASK_TAGS,
    PlaybookStep,
    driver_tag,
)
from orchestrator.plan import assumed_state, build_plan
from tests.unit.engine_fakes import FakeFence, MemoryStore, operation_record

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = INSTALLED_PLAYBOOKS
BIN = Path(sys.executable).parent
EXAMPLE = ROOT / "inventories/example-zimbra/topology.yaml"
HANDLERS = default_handlers(lambda site: None)
# What each tag of ours means: the `when` its task must carry, word for word.
WHEN_OF_TAG = {
    **{driver_tag(d): f"volume_driver == '{d}'" for d in VOLUME_DRIVERS},
    APP_COMMANDS_TAG: "app_commands | default({}) | length > 0",
    APP_SERVICES_TAG: "app_commands | default({}) | length == 0",
}
# The `when` of a task that runs only without an epoch: an unfenced variant, for hands
# only, since sitectl passes an epoch with every call (step_tags).
WITHOUT_EPOCH = "sitectl_epoch | default('') | string | length == 0"


def _conditions(task: dict[str, Any]) -> list[Any]:
    when = task.get("when")
    return when if isinstance(when, list) else [when]


def _tasks(playbook: Path) -> list[dict[str, Any]]:
    return [t for play in yaml.safe_load(playbook.read_text()) for t in play.get("tasks", [])]


def _tagged() -> list[tuple[str, dict[str, Any]]]:
    return [
        (playbook.name, task)
        for playbook in sorted(PLAYBOOKS.glob("*.yml"))
        for task in _tasks(playbook)
        if any(str(tag).startswith("sitectl_") for tag in task.get("tags", []))
    ]


def test_each_tagged_task_says_in_its_when_what_its_tag_means() -> None:
    seen = set()
    for playbook, task in _tagged():
        for tag in task["tags"]:
            seen.add(tag)
            if tag == BY_HAND_TAG:
                # The guard (sitectl composes each action itself), or a variant that runs
                # only without an epoch.
                assert "ansible.builtin.assert" in task or WITHOUT_EPOCH in _conditions(task), (
                    f"{playbook}: {task['name']} is neither a guard nor for calls without an epoch"
                )
                continue
            assert tag in WHEN_OF_TAG, f"{playbook}: {task['name']}: unknown tag {tag}"
            # A list is Ansible's "and": the tag's meaning must be one of its conditions,
            # so a task its tag leaves out would have been skipped by its `when` anyway.
            assert WHEN_OF_TAG[tag] in _conditions(task), f"{playbook}: {task['name']}"
    # Every driver and both ways to run a role have their task tagged, and sitectl knows
    # every tag the playbooks use.
    assert seen == {BY_HAND_TAG, *WHEN_OF_TAG} == TASK_TAGS


@pytest.mark.parametrize(
    ("name", "by_hand"),
    [
        (
            "app.yml",
            ["Refuse an unknown action", "{{ app_action }} {{ app_role }} by its commands"],
        ),
        ("dns-role.yml", ["Refuse an unknown action", "{{ dns_action }} the zone's server"]),
        ("volume.yml", ["Refuse an unknown action"]),
    ],
)
def test_each_playbook_has_its_guard_and_unfenced_variants_tagged_for_hands_only(
    name, by_hand
) -> None:
    tagged = [t for p, t in _tagged() if p == name and BY_HAND_TAG in t["tags"]]
    assert [t["name"] for t in tagged] == by_hand
    # No task that runs only without an epoch is left untagged: sitectl never runs one.
    for task in _tasks(PLAYBOOKS / name):
        if WITHOUT_EPOCH in _conditions(task):
            assert BY_HAND_TAG in task.get("tags", []), f"{name}: {task['name']}"


@pytest.mark.parametrize(
    ("skips", "shared"),
    [
        ([], frozenset()),
        ([{"a", "b"}], {"a", "b"}),
        ([{"a", "b"}, {"b", "c"}], {"b"}),  # a tag one call runs stays in
        ([{"a"}, set()], frozenset()),
    ],
)
def test_a_shared_run_leaves_out_only_what_no_call_runs(skips, shared) -> None:
    calls = [PlaybookCall(Path("p.yml"), ("h",), skip_tags=frozenset(s)) for s in skips]
    assert shared_skips(calls) == shared


def _listed(
    playbook: Path, skip: Collection[str], extravars: dict[str, Any], tmp_path: Path
) -> list[str]:
    run = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "--list-tasks",
            "-i",
            "localhost,",
            "--skip-tags",
            ",".join(sorted(skip)) or "none",
            "-e",
            json.dumps(extravars),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")},
    )
    # "      btrfs: {{ volume_action }}	TAGS: [sitectl_driver_btrfs]": the task's name
    # (--list-tasks does not fill it in); play lines start with "play #".
    return [
        line.split("\t")[0].strip()
        for line in run.stdout.splitlines()
        if "TAGS:" in line and not line.strip().startswith("play #")
    ]


@pytest.mark.parametrize("driver", VOLUME_DRIVERS)
def test_a_volume_call_keeps_only_its_drivers_task(driver, tmp_path) -> None:
    skip = TASK_TAGS - {driver_tag(driver)}  # what a volume step's call leaves out
    listed = _listed(PLAYBOOKS / "volume.yml", skip, {"volume_action": "unmount"}, tmp_path)
    assert listed == [f"{driver}: {{{{ volume_action }}}}"]


# What a run of an app.yml call starts, by the role's way to start and stop: the fenced
# commands, or the epoch check then the services; never the unfenced variant.
APP_TASKS = {
    "commands": [
        "{{ app_action }} {{ app_role }} by its commands, at epoch {{ sitectl_epoch | default('') }}"
    ],
    "services": [
        "Check epoch {{ sitectl_epoch | default('') }} before {{ app_role }}'s services",
        "{{ app_action }} {{ app_role }}'s services",
    ],
}


@pytest.mark.parametrize("way", sorted(APP_TASKS))
def test_an_app_call_keeps_only_its_ways_fenced_tasks(way, tmp_path) -> None:
    calls = [
        c
        for c in _calls(load_topology(EXAMPLE), "switchover")
        if c.playbook.name == "app.yml" and bool(c.extravars["app_commands"]) == (way == "commands")
    ]
    assert calls, f"the example has a role started and stopped by its {way}"
    for call in calls:
        assert _listed(call.playbook, call.skip_tags, {}, tmp_path) == APP_TASKS[way]


def test_by_hand_app_yml_still_runs_a_roles_commands_unfenced(tmp_path) -> None:
    """Without an epoch (a person's run, no ledger): the by-hand variant does the work."""
    mark = tmp_path / "mark"
    run = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps(
                {
                    "app_action": "start",
                    "app_role": "mta",
                    "app_commands": {"start": f"echo started >> {mark}"},
                    "ansible_python_interpreter": sys.executable,
                }
            ),
            str(PLAYBOOKS / "app.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")},
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert mark.read_text().split() == ["started"]
    assert "TASK [start mta by its commands]" in run.stdout


def test_by_hand_the_guard_still_refuses_an_unknown_action(tmp_path) -> None:
    run = subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            "-i",
            "localhost,",
            "-c",
            "local",
            "-e",
            "volume_action=destroy",
            "-e",
            "volume_driver=btrfs",
            str(PLAYBOOKS / "volume.yml"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")},
    )
    assert run.returncode != 0
    assert "Refuse an unknown action" in run.stdout
    assert "btrfs: destroy" not in run.stdout, "nothing ran after the guard"


SKIPPABLE = """- name: one kept task, one left out
  hosts: all
  gather_facts: false
  tasks:
    - name: kept
      ansible.builtin.shell: "echo kept >> {{ mark }}"
    - name: left out
      ansible.builtin.shell: "echo left-out >> {{ mark }}"
      tags: [sitectl_left_out]
"""


def test_sitectl_runs_a_playbook_without_the_tasks_its_call_leaves_out(tmp_path) -> None:
    playbook = tmp_path / "skippable.yml"
    playbook.write_text(SKIPPABLE)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(
        f"all:\n  hosts:\n    h1: {{ansible_connection: local, "
        f"ansible_python_interpreter: {sys.executable}}}\n"
    )
    mark = tmp_path / "mark"

    def run(skip: set[str]) -> list[str]:
        mark.unlink(missing_ok=True)
        run_playbook(
            playbook,
            inventory,
            ("h1",),
            {"mark": str(mark)},
            tmp_path / "art",
            timeout=60,
            skip_tags=skip,
        )
        return mark.read_text().split()

    assert run(set()) == ["kept", "left-out"]
    assert run({"sitectl_left_out"}) == ["kept"]


def _calls(topo: Topology, mode: str) -> list[PlaybookCall]:
    """The playbook calls of every host step of a plan dc1 → dc2, as the engine makes them."""
    plan = build_plan(topo, assumed_state(topo, frozenset()), mode, "dc2")
    op = operation_record(plan, "20261123T020000Z-7a95", reason="tags test")
    executor = Executor(
        plan=plan,
        topology=topo,
        store=MemoryStore(ops={op.id: (op, 0)}, current=op.id),
        lease=FakeFence(),
        handlers=HANDLERS,
        audit=None,  # type: ignore[arg-type]  # calls write nothing
        artifacts=Path("/nonexistent"),
    )
    ctx = executor.context(op)
    return [
        HANDLERS[s.action].call(s, ctx)  # type: ignore[union-attr]
        for s in plan.steps()
        if isinstance(HANDLERS.get(s.action), PlaybookStep)
    ]


@pytest.mark.parametrize("mode", ["switchover", "failover"])
def test_a_plans_shared_run_leaves_out_what_none_of_its_steps_runs(mode) -> None:
    topo = load_topology(EXAMPLE)
    calls = _calls(topo, mode)
    drivers = {v.driver for v in topo.volumes}
    ways = {APP_COMMANDS_TAG if r.commands else APP_SERVICES_TAG for r in topo.roles.values()}
    # Steps of different playbooks share the run: a tag one of them runs stays in.
    assert {"app.yml", "volume.yml"} <= {call.playbook.name for call in calls}
    assert shared_skips(calls) == TASK_TAGS - {*map(driver_tag, drivers), *ways}
    assert all(BY_HAND_TAG in call.skip_tags for call in calls)
    # Leaving the unfenced variants out (sitectl_by_hand) is right only because every
    # call passes the operation's epoch.
    assert all(isinstance(call.extravars["sitectl_epoch"], int) for call in calls)
