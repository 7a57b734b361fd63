"""The typed views of `sitectl status` and of an operation's outcome: their JSON keeps the
shape scripts read, and the mode is an enum wherever it is kept."""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.config import load_topology
from orchestrator.engine.views import OperationView, OutcomeView, StatusView, StepView
from orchestrator.plan import assumed_state, build_plan
from orchestrator.records import Mode, OperationRecord, StepRecord, StepStatus
from tests.unit.engine_fakes import operation_record

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"


def _records() -> dict[str, StepRecord]:
    done = StepRecord("a").advance(StepStatus.RUNNING, now=1.0, epoch=3)
    done = done.advance(StepStatus.DONE, now=2.5, epoch=3, detail="applied and verified")
    running = StepRecord("b").advance(StepStatus.RUNNING, now=2.0, epoch=3)
    return {"a": done, "b": running}


def test_the_mode_is_an_enum_in_the_plan_and_the_record_and_a_string_in_json() -> None:
    plan = build_plan(
        load_topology(EXAMPLE), assumed_state(load_topology(EXAMPLE)), "failover", "dc2"
    )
    op = operation_record(plan)

    assert plan.mode is Mode.FAILOVER and op.mode is Mode.FAILOVER
    assert plan.to_dict()["mode"] == "failover"
    assert OperationRecord.from_json(op.to_json()) == op
    assert OperationRecord.from_json(op.to_json()).mode is Mode.FAILOVER


def test_the_status_json_keeps_its_keys_in_order() -> None:
    plan = build_plan(
        load_topology(EXAMPLE), assumed_state(load_topology(EXAMPLE)), "switchover", "dc2"
    )
    op = operation_record(plan)
    view = StatusView(
        "c", "dc1", True, ("me",), None, OperationView.of(op, _records(), in_progress=True)
    )

    data = json.loads(json.dumps(view.to_json()))

    assert list(data) == [
        "cluster",
        "active_site",
        "active_site_recorded",
        "lock_holders",
        "paused",
        "operation",
        "ticket",
    ]
    assert data["ticket"] is None  # none recorded yet
    assert list(data["operation"]) == [
        "id", "mode", "from_site", "to_site", "status", "started", "finished", "by", "host",
        "reason", "accept_data_loss", "automatic", "epoch", "in_progress", "running_steps",
        "steps_finished", "failed_step", "message", "waiting_for",
    ]  # fmt: skip
    assert data["operation"]["running_steps"] == ["b"]
    assert data["operation"]["steps_finished"] == 1
    assert data["operation"]["mode"] == "switchover"


def test_the_outcome_json_lists_the_started_steps_in_the_plans_order() -> None:
    plan = build_plan(
        load_topology(EXAMPLE), assumed_state(load_topology(EXAMPLE)), "switchover", "dc2"
    )
    op = operation_record(plan)

    data = OutcomeView.of(op, ["x", "b", "a"], _records(), {"n": 1}).to_json()

    assert [s["id"] for s in data["steps"]] == ["b", "a"]
    assert (
        data["steps"][1] == StepView("a", StepStatus.DONE, 1.5, "applied and verified", 1).to_json()
    )
    assert data["steps"][1]["status"] == "done"
    assert data["figures"] == {"n": 1}
