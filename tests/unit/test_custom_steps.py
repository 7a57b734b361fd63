"""Custom steps and approvals (issue 20 items 1 and 2), the pure parts: where the planner
places them, which plans they are scoped to, what `validate` refuses, and how an
approval step treats each answer. No servers: the lab test is tests/engine/test_workflow.py."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.config import Topology, load_topology
from orchestrator.engine.cancel import AbortRequested
from orchestrator.engine.handlers import SkippedByOperator, StepContext
from orchestrator.engine.lifecycle import OperationApprovals
from orchestrator.engine.records import Decision, Verdict
from orchestrator.engine.steps.approval import ApprovalHandler
from orchestrator.errors import Failed
from orchestrator.plan import Phase, build_plan, build_reprotect_plan
from orchestrator.plan.build import custom_step_findings
from orchestrator.plan.custom import AUTOMATIC_APPROVAL
from orchestrator.plan.observed import MirrorView, ObservedState
from tests.unit.engine_fakes import FakeFence, MemoryStore, operation_record

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra"


def _topology(tmp_path: Path, custom: list[dict[str, Any]], **policy: Any) -> Path:
    doc = yaml.safe_load((EXAMPLE / "topology.yaml").read_text())
    doc["custom_steps"] = custom
    doc["policy"] = {**doc.get("policy", {}), **policy}
    for name in ("hosts.yml", "pki", "playbooks"):
        source = EXAMPLE / name
        if source.is_dir():
            shutil.copytree(source, tmp_path / name, dirs_exist_ok=True)
        elif source.exists():
            shutil.copy(source, tmp_path / name)
    (tmp_path / "flush.yml").write_text("- hosts: all\n  tasks: []\n")
    path = tmp_path / "topology.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _load(tmp_path: Path, custom: list[dict[str, Any]], **policy: Any) -> Topology:
    return load_topology(_topology(tmp_path, custom, **policy), checks=(custom_step_findings,))


def _state(topo: Topology, active: str = "dc1") -> ObservedState:
    other = "dc2" if active == "dc1" else "dc1"
    return ObservedState(
        active_site=active, mirrors={v.name: MirrorView(active, other) for v in topo.volumes}
    )


def _shape(plan: Any) -> list[tuple[str, list[str]]]:
    return [(g.phase.value, [s.id for s in g.steps]) for g in plan.groups]


FLUSH = {"name": "flush", "after": "start-services", "command": "echo {to} > flushed"}
DBA = {"name": "dba", "approval": True, "before": "disable-application"}


@pytest.mark.parametrize(
    ("custom", "mode", "trigger", "where"),
    [
        # after a phase: after its last group; before one: before its first
        ([FLUSH], "switchover", "manual", ("after", "start-services", "custom/flush")),
        ([DBA], "switchover", "manual", ("before", "disable-application", "approval/dba")),
        # a step id as the anchor
        (
            [{**FLUSH, "after": None, "before": "dns/example.com."}],
            "failover",
            "manual",
            ("before-step", "dns/example.com.", "custom/flush"),
        ),
        # the drill scope: a drill's operations are "drill", not "switchover"
        (
            [{**FLUSH, "modes": ["drill"]}],
            "switchover",
            "drill",
            ("after", "start-services", "custom/flush"),
        ),
    ],
)
def test_a_custom_step_is_placed_at_its_anchor(
    tmp_path: Path,
    custom: list[dict[str, Any]],
    mode: str,
    trigger: str,
    where: tuple[str, str, str],
) -> None:
    topo = _load(tmp_path, custom)
    plan = build_plan(topo, _state(topo), mode, "dc2", trigger)  # type: ignore[arg-type]
    how, anchor, step_id = where
    index = next(i for i, g in enumerate(plan.groups) if g.steps[0].id == step_id)
    before, after = plan.groups[index - 1], plan.groups[index + 1]
    phases = [g.phase.value for g in plan.groups]
    if how == "after":  # after the last group of the phase
        assert before.phase.value == anchor and anchor not in phases[index:], _shape(plan)
    elif how == "before":  # before the first group of the phase
        assert after.phase.value == anchor and anchor not in phases[:index], _shape(plan)
    else:  # before the group holding the step
        assert anchor in [s.id for s in after.steps], _shape(plan)
    assert [s.id for s in plan.groups[index].steps] == [step_id]  # a group of its own


@pytest.mark.parametrize(
    ("scope", "mode", "trigger", "from_site", "planned"),
    [
        ({}, "switchover", "manual", "dc1", True),
        ({"modes": ["failover"]}, "switchover", "manual", "dc1", False),
        ({"modes": ["switchover"]}, "switchover", "drill", "dc1", False),
        ({"modes": ["drill"]}, "switchover", "drill", "dc1", True),
        ({"directions": ["dc1->dc2"]}, "switchover", "manual", "dc1", True),
        ({"directions": ["dc2→dc1"]}, "switchover", "manual", "dc1", False),
        ({"directions": ["dc2 -> dc1"]}, "switchover", "manual", "dc2", True),
    ],
)
def test_a_custom_step_is_planned_only_in_its_scope(
    tmp_path: Path, scope: dict[str, Any], mode: str, trigger: str, from_site: str, planned: bool
) -> None:
    topo = _load(tmp_path, [{**FLUSH, **scope}])
    to_site = "dc2" if from_site == "dc1" else "dc1"
    plan = build_plan(topo, _state(topo, from_site), mode, to_site, trigger)  # type: ignore[arg-type]
    assert ("custom/flush" in [s.id for s in plan.steps()]) is planned


def test_steps_at_one_place_keep_the_files_order_and_their_kinds(tmp_path: Path) -> None:
    custom = [
        FLUSH,
        {
            "name": "page",
            "after": "start-services",
            "playbook": "flush.yml",
            "on": "mailbox",
            "timeout": "2m",
            "on_failure": "continue",
        },
    ]
    topo = _load(tmp_path, custom)
    plan = build_plan(topo, _state(topo), "switchover", "dc2")
    ids = [s.id for s in plan.steps()]
    assert ids.index("custom/page") == ids.index("custom/flush") + 1
    flush, page = plan.step("custom/flush"), plan.step("custom/page")
    assert (flush.action.value, flush.site, flush.hosts) == ("custom.command", None, ())
    assert flush.params["timeout"] == topo.policy.step_timeout
    assert (page.action.value, page.site) == ("custom.playbook", "dc2")
    assert page.hosts == tuple(h.name for h in topo.hosts_of("dc2", "mailbox"))
    assert (page.params["timeout"], page.params["on_failure"]) == (120.0, "continue")


def test_a_custom_step_on_the_old_site_is_skipped_if_it_is_gone_in_a_failover(
    tmp_path: Path,
) -> None:
    topo = _load(
        tmp_path,
        [
            {
                "name": "drain",
                "before": "disable-application",
                "command": "true",
                "on": "mta",
                "site": "from",
            }
        ],
    )
    plan = build_plan(topo, _state(topo), "failover", "dc2")
    drain = plan.step("custom/drain")
    assert (drain.site, drain.if_unreachable) == ("dc1", "skip")


def test_an_anchor_a_plan_lacks_is_noted_and_reprotect_takes_its_own(tmp_path: Path) -> None:
    topo = _load(
        tmp_path,
        [
            {"name": "after-sync", "after": "final-sync", "command": "true"},
            {"name": "salvaged", "after": "salvage", "command": "true", "modes": ["reprotect"]},
        ],
    )
    failover = build_plan(topo, _state(topo), "failover", "dc2")
    assert "custom/after-sync" not in [s.id for s in failover.steps()]
    assert any("custom step after-sync is not planned" in n for n in failover.notes)
    reprotect = build_reprotect_plan(topo, _state(topo, "dc2"))
    ids = [s.id for s in reprotect.steps()]
    assert ids.index("custom/salvaged") > max(
        i for i, s in enumerate(reprotect.steps()) if s.phase is Phase.SALVAGE
    )


@pytest.mark.parametrize(
    ("wanted", "trigger", "planned"),
    [(True, "automatic", True), (True, "manual", False), (False, "automatic", False)],
)
def test_an_automatic_failover_waits_for_a_person_when_the_policy_says_so(
    tmp_path: Path, wanted: bool, trigger: str, planned: bool
) -> None:
    topo = _load(tmp_path, [], approve_automatic_failover=wanted)
    plan = build_plan(topo, _state(topo), "failover", "dc2", trigger)  # type: ignore[arg-type]
    ids = [s.id for s in plan.steps()]
    step = f"approval/{AUTOMATIC_APPROVAL}"
    assert (step in ids) is planned
    if planned:
        assert ids.index(step) == ids.index("readiness/gate") + 1


@pytest.mark.parametrize(
    ("custom", "field", "says"),
    [
        ({**FLUSH, "after": "start-service"}, "custom_steps.0.after", "neither a phase nor a step"),
        ({**FLUSH, "on": "nosuchrole"}, "custom_steps.0.on", "role 'nosuchrole' is not defined"),
        (
            {**FLUSH, "directions": ["dc1->dc1"]},
            "custom_steps.0.directions.0",
            "from one datacenter",
        ),
        ({**FLUSH, "directions": ["dc1 to dc2"]}, "custom_steps.0.directions.0", "FROM->TO"),
        ({**FLUSH, "playbook": "flush.yml"}, "custom_steps.0", "exactly one of command"),
        ({"name": "x", "command": "true"}, "custom_steps.0", "exactly one of before: or after:"),
        (
            {"name": "x", "after": "dns", "playbook": "missing.yml"},
            "custom_steps.0.playbook",
            "does not exist",
        ),
        ({**DBA, "on": "mta"}, "custom_steps.0", "approval 'dba' runs nowhere"),
        ({**FLUSH, "modes": []}, "custom_steps.0", "lists no mode"),
    ],
)
def test_validate_refuses_a_bad_custom_step_in_one_line(
    tmp_path: Path, custom: dict[str, Any], field: str, says: str
) -> None:
    path = _topology(tmp_path, [custom])
    result = CliRunner().invoke(app, ["validate", "-c", str(path)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if f" {field}: " in line]
    assert lines and says in lines[0], result.output
    assert str(path) in lines[0]


# The approval step against the in-memory store (the ZooKeeper one: tests/coordination).


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def _approval_run(
    tmp_path: Path, answers: dict[float, Decision], **params: Any
) -> tuple[MemoryStore, list[str], Exception | None]:
    topo = _load(tmp_path, [{**DBA, **params}])
    plan = build_plan(topo, _state(topo), "switchover", "dc2")
    step = plan.step("approval/dba")
    store, fence, clock = MemoryStore(), FakeFence(), _Clock()
    op = operation_record(plan)
    said: list[str] = []

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        for at, decision in list(answers.items()):
            if clock.now >= at:
                store.decide(op.id, step.id, decision)
                answers.pop(at)

    ctx = StepContext(
        topology=topo,
        plan=plan,
        operation=op,
        fence=fence,
        artifacts=tmp_path,
        log=said.append,
        approvals=OperationApprovals(store, fence, op.id),
        notify=lambda event, step_id, detail: said.append(f"notify {event} {step_id}"),
    )
    handler = ApprovalHandler(clock=clock, sleep=sleep)
    try:
        handler.apply(step, ctx)
    except (Failed, SkippedByOperator, AbortRequested) as exc:
        return store, said, exc
    return store, said, None


def _decision(verdict: Verdict, by: str = "alice@ops1") -> Decision:
    return Decision(verdict, by, "checked", 0.0)


def test_an_approval_asks_tells_and_goes_on_when_approved(tmp_path: Path) -> None:
    store, said, error = _approval_run(tmp_path, {1005.0: _decision(Verdict.APPROVE)})
    assert error is None
    assert "notify approval-needed approval/dba" in said
    assert said[-1] == "approval/dba approved by alice@ops1: checked"
    assert [r.step_id for r in store.approval_requests("")] == ["approval/dba"]


def test_a_reject_fails_the_step_and_is_forgotten_so_a_resume_asks_again(tmp_path: Path) -> None:
    store, _, error = _approval_run(tmp_path, {1003.0: _decision(Verdict.REJECT)})
    assert isinstance(error, Failed) and str(error) == "rejected by alice@ops1: checked"
    assert store.answers == {}


def test_a_skip_passes_over_the_step(tmp_path: Path) -> None:
    _, _, error = _approval_run(tmp_path, {1002.0: _decision(Verdict.SKIP)})
    assert isinstance(error, SkippedByOperator) and "skipped by alice@ops1" in str(error)


@pytest.mark.parametrize(("on_timeout", "fails"), [("reject", True), ("approve", False)])
def test_a_timeout_does_what_on_timeout_says(tmp_path: Path, on_timeout: str, fails: bool) -> None:
    _, said, error = _approval_run(tmp_path, {}, timeout="30s", on_timeout=on_timeout)
    assert isinstance(error, Failed) is fails
    if fails:
        assert str(error) == "no answer to approval/dba within 30 s: rejected by its on_timeout"
    else:
        assert said[-1] == "no answer to approval/dba within 30 s: approved by its on_timeout"


def test_an_answer_from_someone_not_listed_is_ignored(tmp_path: Path) -> None:
    answers = {1002.0: _decision(Verdict.APPROVE, "mallory@ops1")}
    _, said, error = _approval_run(tmp_path, answers, approvers=["alice"], timeout="10s")
    assert "mallory@ops1 answered approval/dba, but only alice may: ignored" in said
    assert isinstance(error, Failed)  # nobody allowed answered: its timeout rejected it


def test_the_runbook_gives_each_custom_step_its_exact_command(tmp_path: Path) -> None:
    custom = [
        DBA,
        FLUSH,
        {"name": "page", "after": "dns", "playbook": "flush.yml", "on": "mailbox"},
    ]
    path = _topology(tmp_path, custom)
    result = CliRunner().invoke(app, ["runbook", "-c", str(path), "--to", "dc2"])
    assert result.exit_code == 0, result.output
    text = result.output
    # On this machine: the command with sitectl's values filled in, as sitectl runs it.
    assert "sh -c 'echo dc2 > flushed'" in text
    assert "SITECTL_TO=dc2" in text
    assert "ansible-playbook -i hosts.yml flush.yml --limit dc2_mailbox" in text
    assert "approval dba" in text
    order = [text.index(s) for s in ("approval dba", "flush.yml --limit", "echo dc2 > flushed")]
    assert order == sorted(order)
