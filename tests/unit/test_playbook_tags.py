"""sitectl leaves out, with --skip-tags, the tasks of our playbooks its call cannot run:
each costs a worker fork (~30 ms) even when its `when` skips it. Leaving one out must
never change what runs, so every tagged task's `when` must say exactly what its tag
does (as the whole `when`, or as one of a list's conditions, which Ansible ands); a person
running a playbook by hand still gets the guard and the unfenced variants. In a shared
run each step leaves out exactly what a run of its own would, through the prefix its
plays give their tags (--skip-tags is one list for the whole run).

Real ansible-playbook runs (and --list-tasks) on a local host; the rest is pure."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.adapters.ansible import (
    ACTION_PLUGINS,
    GATE_PLAY,
    TAG_PREFIX_VAR,
    BatchItem,
    GateAnswer,
    PlaybookCall,
    compose_batch,
    run_batch,
    run_playbook,
    shared_skips,
    step_skips,
)
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
from tests.unit.local_hosts import local_inventory

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


# How our playbooks write each tag: after the prefix a shared run sets per step.
PREFIX = "{{ " + TAG_PREFIX_VAR + " | default('') }}"


def _tasks(playbook: Path) -> list[dict[str, Any]]:
    return [t for play in yaml.safe_load(playbook.read_text()) for t in play.get("tasks", [])]


def _tags(task: dict[str, Any]) -> list[str]:
    """A task's tags as sitectl names them, without the prefix."""
    return [str(tag).removeprefix(PREFIX) for tag in task.get("tags", [])]


def _tagged() -> list[tuple[str, dict[str, Any]]]:
    return [
        (playbook.name, task)
        for playbook in sorted(PLAYBOOKS.glob("*.yml"))
        for task in _tasks(playbook)
        if _tags(task)
    ]


def test_each_tag_is_written_after_the_prefix_a_shared_run_sets() -> None:
    # A tag without it could be left out of a shared run only when no step runs it.
    for playbook, task in _tagged():
        for tag in task["tags"]:
            assert str(tag).startswith(PREFIX + "sitectl_"), f"{playbook}: {task['name']}: {tag}"


def test_each_tagged_task_says_in_its_when_what_its_tag_means() -> None:
    seen = set()
    for playbook, task in _tagged():
        for tag in _tags(task):
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
    tagged = [t for p, t in _tagged() if p == name and BY_HAND_TAG in _tags(t)]
    assert [t["name"] for t in tagged] == by_hand
    # No task that runs only without an epoch is left untagged: sitectl never runs one.
    for task in _tasks(PLAYBOOKS / name):
        if WITHOUT_EPOCH in _conditions(task):
            assert BY_HAND_TAG in _tags(task), f"{name}: {task['name']}"


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


def _list_tasks(
    playbook: Path,
    skip: Collection[str],
    extravars: dict[str, Any],
    tmp_path: Path,
    batch: bool = False,
) -> list[tuple[str, str]]:
    """(play, task) of each task `ansible-playbook --list-tasks` lists, in order."""
    # A shared run's gate plays use sitectl's own action (adapters/ansible_action).
    plugins = {"ANSIBLE_ACTION_PLUGINS": str(ACTION_PLUGINS)} if batch else {}
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
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t"), **plugins},
    )
    # "  play #2 (all:!all): stop role mta	TAGS: []", then its tasks, each as
    # "      btrfs: {{ volume_action }}	TAGS: [sitectl_driver_btrfs]": the task's name
    # (--list-tasks does not fill it in).
    listed, play = [], ""
    for line in run.stdout.splitlines():
        if line.strip().startswith("play #"):
            play = line.split("): ", 1)[1].split("\t")[0]
        elif "TAGS:" in line:
            listed.append((play, line.split("\t")[0].strip()))
    return listed


def _listed(
    playbook: Path, skip: Collection[str], extravars: dict[str, Any], tmp_path: Path
) -> list[str]:
    return [task for _, task in _list_tasks(playbook, skip, extravars, tmp_path)]


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


def _by_hand(playbook: Path, *extra_vars: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """A person's run of one of our playbooks on this machine, with `-e` for each var."""
    return subprocess.run(
        [
            str(BIN / "ansible-playbook"),
            *("-i", "localhost,", "-c", "local"),
            *(arg for var in extra_vars for arg in ("-e", var)),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": f"{BIN}:/usr/bin:/bin", "ANSIBLE_LOCAL_TEMP": str(tmp_path / "t")},
    )


def test_by_hand_app_yml_still_runs_a_roles_commands_unfenced(tmp_path) -> None:
    """Without an epoch (a person's run, no ledger): the by-hand variant does the work."""
    mark = tmp_path / "mark"
    run = _by_hand(
        PLAYBOOKS / "app.yml",
        json.dumps(
            {
                "app_action": "start",
                "app_role": "mta",
                "app_commands": {"start": f"echo started >> {mark}"},
                "ansible_python_interpreter": sys.executable,
            }
        ),
        tmp_path=tmp_path,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert mark.read_text().split() == ["started"]
    assert "TASK [start mta by its commands]" in run.stdout


def test_by_hand_the_guard_still_refuses_an_unknown_action(tmp_path) -> None:
    run = _by_hand(
        PLAYBOOKS / "volume.yml", "volume_action=destroy", "volume_driver=btrfs", tmp_path=tmp_path
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
    inventory = local_inventory(tmp_path)
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


# SKIPPABLE as our playbooks write their tags, so that a shared run can leave the task
# out for one step only.
SKIPPABLE_PER_STEP = SKIPPABLE.replace(
    "tags: [sitectl_left_out]", f'tags: ["{PREFIX}sitectl_left_out"]'
).replace("hosts: all", "hosts: \"{{ sitectl_hosts | default('all') }}\"")


def _go(step: str, after: str | None, hosts: tuple[str, ...]) -> GateAnswer:
    return GateAnswer("go")


def test_a_shared_run_leaves_a_task_out_for_the_step_whose_call_leaves_it_out(tmp_path) -> None:
    playbook = tmp_path / "skippable.yml"
    playbook.write_text(SKIPPABLE_PER_STEP)
    inventory = local_inventory(tmp_path)
    marks = {name: tmp_path / name for name in ("leaves-out", "keeps", "leaves-out-too")}
    skips = {
        "leaves-out": {"sitectl_left_out"},
        "keeps": set(),
        "leaves-out-too": {"sitectl_left_out"},
    }
    items = [
        BatchItem(
            name, PlaybookCall(playbook, ("h1",), {"mark": str(mark)}, frozenset(skips[name]))
        )
        for name, mark in marks.items()
    ]

    run_batch(items, inventory, tmp_path / "art", _go, timeout=60, gate_timeout=30)

    assert {name: mark.read_text().split() for name, mark in marks.items()} == {
        "leaves-out": ["kept"],
        "keeps": ["kept", "left-out"],
        "leaves-out-too": ["kept"],
    }
    # Left out, not skipped: the task never started (no worker forked for it) where it
    # was left out; it started once, for the step that keeps it.
    started = [
        json.loads(e.read_text())["event_data"]
        for e in (tmp_path / "art").glob("artifacts/*/job_events/*.json")
        if json.loads(e.read_text()).get("event") == "runner_on_start"
    ]
    assert [e["task"] for e in started].count("left out") == 1


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


# What a step's run starts, by its playbook and its way to start and stop or its driver:
# never a task its `when` then skips.
STARTS = {
    ("app.yml", "commands"): APP_TASKS["commands"],
    ("app.yml", "services"): APP_TASKS["services"],
    **{("volume.yml", d): [f"{d}: {{{{ volume_action }}}}"] for d in VOLUME_DRIVERS},
    ("dns-role.yml", ""): [
        "{{ dns_action }} the zone's server, at epoch {{ sitectl_epoch | default('') }}"
    ],
}


def _step_call(playbook: str, kind: str) -> PlaybookCall:
    """A step's call as playbook_call makes it: every tag left out but its kind's."""
    if playbook == "app.yml":
        runs = APP_COMMANDS_TAG if kind == "commands" else APP_SERVICES_TAG
        extravars: dict[str, Any] = {"app_commands": {"stop": "true"} if kind == "commands" else {}}
    else:
        runs, extravars = driver_tag(kind), {"volume_driver": kind}
    return PlaybookCall(
        PLAYBOOKS / playbook, ("h1",), {**extravars, "sitectl_epoch": 7}, TASK_TAGS - {runs}
    )


def _kind(call: PlaybookCall) -> tuple[str, str]:
    if call.playbook.name == "app.yml":
        return "app.yml", "commands" if call.extravars["app_commands"] else "services"
    return call.playbook.name, str(call.extravars.get("volume_driver", ""))


def _listed_by_step(items: list[BatchItem], tmp_path: Path) -> dict[str, list[str]]:
    """The tasks the composed playbook of a shared run of `items` lists for each step,
    with the run's --skip-tags: those of the plays after the step's gate play."""
    batch = tmp_path / "batch.yml"
    batch.write_text(json.dumps(compose_batch(items, str(tmp_path / "gate.sock"), 60)))
    by_step: dict[str, list[str]] = {}
    step = ""
    for play, task in _list_tasks(batch, step_skips(items), {}, tmp_path, batch=True):
        if play.startswith(GATE_PLAY):
            step = play.removeprefix(GATE_PLAY)
            by_step.setdefault(step, [])
        else:
            by_step[step].append(task)
    return by_step


@pytest.mark.parametrize(
    "steps",
    [
        # The lab's switchover: roles by their commands, its DNS role by its services.
        [("app.yml", "commands"), ("volume.yml", "btrfs"), ("app.yml", "services")],
        [("app.yml", "services"), ("app.yml", "commands"), ("app.yml", "services")],
        [("volume.yml", "netapp"), ("volume.yml", "command"), ("volume.yml", "btrfs")],
        [("app.yml", "commands"), ("app.yml", "commands")],
    ],
    ids=lambda steps: "+".join(f"{p.removesuffix('.yml')}:{k}" for p, k in steps),
)
def test_each_step_of_a_shared_run_starts_only_its_own_tasks(steps, tmp_path) -> None:
    items = [BatchItem(f"step {i}", _step_call(*kind)) for i, kind in enumerate(steps)]
    # A gate alone (DNS, which sitectl runs itself) between them shifts the steps' indexes.
    items.insert(1, BatchItem("dns", None))
    listed = _listed_by_step(items, tmp_path)
    assert listed == {
        "dns": [],
        "sitectl:end": [],
        **{f"step {i}": STARTS[kind] for i, kind in enumerate(steps)},
    }


@pytest.mark.parametrize("mode", ["switchover", "failover"])
def test_a_plans_shared_run_leaves_out_per_step_what_its_own_run_would(mode, tmp_path) -> None:
    """The engine's calls of a plan's host steps: in one run, each step lists what a run
    of its own call lists (--skip-tags of its own), which is its kind's row of STARTS."""
    calls = _calls(load_topology(EXAMPLE), mode)
    items = [BatchItem(f"step {i}", call) for i, call in enumerate(calls)]
    listed = _listed_by_step(items, tmp_path)
    alone: dict[tuple[Path, frozenset[str]], list[str]] = {}
    for item in items:
        assert item.call is not None
        key = (item.call.playbook, item.call.skip_tags)
        if key not in alone:
            alone[key] = _listed(item.call.playbook, item.call.skip_tags, {}, tmp_path)
        assert listed[item.name] == alone[key] == STARTS[_kind(item.call)], item.name
    # Both of app.yml's ways share these runs: the intersection alone would have kept both.
    assert {_kind(c) for c in calls} >= {("app.yml", "commands"), ("app.yml", "services")}
