"""Notifications (issue 20 item 3): the payload as data, and delivery for real: a stdlib
HTTP server on loopback and real commands, including ones that fail or hang."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit import AuditLog
from orchestrator.config import load_topology
from orchestrator.config.model import Notifications, NotifyTarget
from orchestrator.engine.executor import Executor
from orchestrator.errors import Failed
from orchestrator.notify.dispatch import Notifier, OperationNotices
from orchestrator.notify.payload import (
    SCHEMA,
    closing_event,
    environment,
    iso_utc,
    operation_notice,
    plan_notice,
    split_brain_notice,
    trigger_of,
)
from orchestrator.plan import Action, assumed_state, build_plan
from orchestrator.records import OperationRecord, OpStatus
from tests.unit.engine_fakes import FakeFence, MemoryStore, ScriptedHandler, operation_record
from tests.webhook import PAYLOAD_KEYS as KEYS
from tests.webhook import Receiver, receiving

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"


def _op(**changes: Any) -> OperationRecord:
    base = OperationRecord(
        id="20261206T220000Z-ab12",
        mode="switchover",
        from_site="dc1",
        to_site="dc2",
        started=1000.0,
        by="ops",
        host="box",
        reason="quarterly move",
        automatic=False,
        plan_digest="d",
        epoch=7,
    )
    return replace(base, **changes)


# ---- the payload: pure ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "trigger"),
    [
        ({}, "manual"),
        ({"automatic": True}, "automatic"),
        ({"drill": "drill-20261206T220000Z-cd34"}, "drill"),
    ],
)
def test_the_trigger_says_who_set_the_operation_going(changes, trigger) -> None:
    assert trigger_of(_op(**changes)) == trigger


@pytest.mark.parametrize(
    ("status", "event"),
    [
        (OpStatus.SUCCEEDED, "finished"),
        (OpStatus.FAILED, "failed"),
        (OpStatus.REFUSED, "failed"),
        (OpStatus.ABORTED, "failed"),
        (OpStatus.INTERRUPTED, "failed"),
    ],
)
def test_every_way_an_operation_ends_but_success_is_failed(status, event) -> None:
    assert closing_event(status) == event


def test_an_operation_event_carries_every_key_in_one_documented_shape() -> None:
    op = _op(drill="drill-x")
    body = operation_notice(
        op,
        "zimbra",
        "step-failed",
        seq=3,
        at=1765058401.5,
        detail="step x failed: y",
        step="start-services/dc2/mta",
        epoch=9,
    ).body()
    assert list(body) == KEYS
    assert body == {
        "schema": SCHEMA,
        "event": "step-failed",
        "seq": 3,
        "at": "2025-12-06T22:00:01.500Z",
        "cluster": "zimbra",
        "operation": op.id,
        "epoch": 9,
        "mode": "switchover",
        "trigger": "drill",
        "drill": "drill-x",
        "from_site": "dc1",
        "to_site": "dc2",
        "by": "ops",
        "reason": "quarterly move",
        "step": "start-services/dc2/mta",
        "status": None,
        "detail": "step x failed: y",
        "findings": [],
    }


def test_a_split_brain_has_the_same_shape_and_no_operation() -> None:
    body = split_brain_notice(
        "zimbra",
        seq=1,
        at=0.0,
        vantage="dc2",
        by="dc2 root@c2:7",
        active_site="dc1",
        findings=("application split-brain: smtp answers on dc1 and dc2",),
    ).body()
    assert list(body) == KEYS
    assert (body["event"], body["operation"], body["mode"], body["trigger"]) == (
        "split-brain",
        None,
        None,
        None,
    )
    assert body["detail"] == (
        "dc2's controller sees two sites serving (dc1 recorded active): "
        "application split-brain: smtp answers on dc1 and dc2"
    )
    assert body["findings"] == ["application split-brain: smtp answers on dc1 and dc2"]


def test_a_command_sees_the_payload_as_sitectl_variables_without_the_nulls() -> None:
    body = operation_notice(_op(), "zimbra", "started", seq=1, at=0.0, detail="go").body()
    env = environment(body)
    assert env["SITECTL_EVENT"] == "started"
    assert env["SITECTL_SEQ"] == "1"
    assert env["SITECTL_EPOCH"] == "7"
    assert env["SITECTL_FINDINGS"] == "[]"
    assert "SITECTL_STEP" not in env and "SITECTL_DRILL" not in env
    assert iso_utc(0.0) == "1970-01-01T00:00:00.000Z"


def test_split_brain_is_not_an_operation_event() -> None:
    with pytest.raises(ValueError, match="not an operation's event"):
        operation_notice(_op(), "zimbra", "split-brain", seq=1, at=0.0, detail="")


# ---- delivery, for real --------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as got:
        yield got


def _notifier(tmp_path: Path, *targets: dict[str, Any], timeout: float = 2.0) -> Notifier:
    settings = Notifications(timeout=timeout, targets=tuple(NotifyTarget(**t) for t in targets))
    return Notifier(settings, tmp_path, AuditLog(tmp_path / "audit.jsonl"))


def _within(seconds: float, done: Any) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "not within the bound"
        time.sleep(0.02)


def _events(notices: OperationNotices, *events: str) -> None:
    for event in events:
        notices.notify(event, None, f"{event} happened")


def test_a_webhook_gets_every_event_in_order_numbered_from_one(tmp_path, receiver) -> None:
    notifier = _notifier(tmp_path, {"url": receiver.url})
    notices = OperationNotices(notifier, _op(), "zimbra", epoch=8)
    _events(notices, "started", "step-failed", "failed")
    notifier.close()
    assert receiver.events() == ["started", "step-failed", "failed"]
    assert [p["seq"] for p in receiver.posts] == [1, 2, 3]
    assert {p["epoch"] for p in receiver.posts} == {8}
    assert receiver.headers[0]["Content-Type"] == "application/json"
    assert "Authorization" not in receiver.headers[0]


def test_events_from_steps_side_by_side_keep_their_numbers_in_order(tmp_path, receiver) -> None:
    notifier = _notifier(tmp_path, {"url": receiver.url})
    notices = OperationNotices(notifier, _op(), "zimbra", epoch=1)
    threads = [
        threading.Thread(target=_events, args=(notices, *["step-failed"] * 10)) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    notifier.close()
    assert [p["seq"] for p in receiver.posts] == list(range(1, 41))


def test_a_target_gets_only_the_events_it_lists(tmp_path, receiver) -> None:
    notifier = _notifier(tmp_path, {"url": receiver.url, "events": ["finished", "failed"]})
    _events(OperationNotices(notifier, _op(), "zimbra", epoch=1), "started", "finished")
    notifier.close()
    assert receiver.events() == ["finished"]
    assert receiver.posts[0]["seq"] == 2  # numbered per operation, not per target


def test_a_bearer_token_is_read_from_its_private_file(tmp_path, receiver) -> None:
    token = tmp_path / "hook.token"
    token.write_text("s3cr3t-hook-token\n")
    token.chmod(0o600)
    notifier = _notifier(tmp_path, {"url": receiver.url, "token_file": "hook.token"})
    _events(OperationNotices(notifier, _op(), "zimbra", epoch=1), "started")
    _within(5, lambda: len(receiver.posts) == 1)
    token.chmod(0o644)  # checked at every send: now refused, and said so
    _events(OperationNotices(notifier, _op(), "zimbra", epoch=1), "started")
    notifier.close()
    assert receiver.headers[0]["Authorization"] == "Bearer s3cr3t-hook-token"
    assert len(receiver.posts) == 1
    failed = [
        e for e in AuditLog(tmp_path / "audit.jsonl").read() if e["event"] == "notification.failed"
    ]
    assert len(failed) == 1 and "chmod 600" in failed[0]["detail"], failed


def test_a_command_gets_the_payload_on_stdin_and_the_allow_listed_environment(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZIMBRA_LDAP_PASSWORD", "notify-canary-pw")
    out = tmp_path / "seen"
    script = f"cat > {out}.json; env > {out}.env"
    notifier = _notifier(tmp_path, {"command": f"sh -c '{script}'"})
    _events(OperationNotices(notifier, _op(automatic=True), "zimbra", epoch=2), "started")
    notifier.close()
    body = json.loads(Path(f"{out}.json").read_text())
    assert (body["event"], body["trigger"], body["seq"]) == ("started", "automatic", 1)
    env = Path(f"{out}.env").read_text()
    assert "SITECTL_EVENT=started" in env and "SITECTL_TRIGGER=automatic" in env
    assert "notify-canary-pw" not in env


def test_failing_and_hanging_targets_hold_up_nothing_and_are_audited(tmp_path, receiver) -> None:
    """A webhook answering 500, a command exiting 3, one that hangs, a webhook nobody
    listens on: `notify` returns at once, the healthy target gets everything, `close`
    gives up after its bound, and each failure is one audited sentence."""
    receiver.code = 500
    good: list[dict[str, Any]] = []
    ok_file = tmp_path / "ok.jsonl"
    notifier = _notifier(
        tmp_path,
        {"url": receiver.url},
        {"command": "sh -c 'exit 3'"},
        {"command": "sleep 30"},
        {"url": "http://127.0.0.1:9/nobody"},
        {"command": f"sh -c 'cat >> {ok_file}; echo >> {ok_file}'"},
        timeout=0.5,
    )
    notices = OperationNotices(notifier, _op(), "zimbra", epoch=1)
    began = time.monotonic()
    _events(notices, "started", "step-failed", "failed")
    assert time.monotonic() - began < 0.2
    notifier.close(wait=1.0)
    assert time.monotonic() - began < 3.0
    good = [json.loads(line) for line in ok_file.read_text().splitlines() if line.strip()]
    assert [g["event"] for g in good] == ["started", "step-failed", "failed"]
    assert receiver.events() == ["started", "step-failed", "failed"]  # it did get them
    audit = AuditLog(tmp_path / "audit.jsonl").read()
    said = [e["detail"] for e in audit if e["event"] == "notification.failed"]
    assert (
        f"notification started #1 of operation {_op().id} not delivered ({receiver.url} answered 500); the operation goes on"
        in said
    )
    assert any("\"sh -c 'exit 3'\" exited 3" in s for s in said), said
    assert any("'sleep 30' ran over 0.5 s" in s for s in said), said
    assert any("http://127.0.0.1:9/nobody did not answer" in s for s in said), said
    # The hanging command got at most three tries of 0.5 s within the 1 s bound: the rest
    # was given up on, and said so.
    abandoned = [e for e in audit if e["event"] == "notification.abandoned"]
    assert [e["target"] for e in abandoned] == ["command 'sleep 30'"], abandoned


# ---- the engine tells: step-failed, and ctx.notify for a step -------------------------


def test_the_executor_tells_of_a_failed_step_and_hands_steps_notify(tmp_path) -> None:
    topo = load_topology(EXAMPLE)
    plan = build_plan(topo, assumed_state(topo, frozenset()), "switchover", "dc2")
    op = operation_record(plan)
    store = MemoryStore(ops={op.id: (op, 0)}, current=op.id)
    told: list[tuple[str, str | None, str]] = []
    handler = ScriptedHandler(always={"mount/dc2/mailstore1": Failed("mount: wrong fs type")})
    contexts: list[Any] = []
    check = handler.check

    def seeing(step, ctx):
        contexts.append(ctx)
        return check(step, ctx)

    handler.check = seeing  # type: ignore[method-assign]
    ticks = iter(range(2000, 100000))
    executor = Executor(
        plan=plan,
        topology=topo,
        store=store,
        lease=FakeFence(),
        handlers=dict.fromkeys(Action, handler),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        artifacts=tmp_path,
        clock=lambda: float(next(ticks)),
        sleep=lambda _: None,
        notify=lambda event, step, detail: told.append((event, step, detail)),
    )
    result = executor.run(op.id)
    assert result.status is OpStatus.FAILED
    assert told == [
        (
            "step-failed",
            "mount/dc2/mailstore1",
            "step mount/dc2/mailstore1 failed: mount: wrong fs type",
        )
    ]
    contexts[0].notify("approval-needed", "approve/x", "waiting")
    assert told[-1] == ("approval-needed", "approve/x", "waiting")


def test_a_plan_evaluation_notice_names_the_target_and_each_failed_check() -> None:
    notice = plan_notice(
        "lab",
        "plan-not-ready",
        seq=3,
        at=0.0,
        by="dc2-controller",
        to_site="dc2",
        verdict="a move to dc2 could not run now: 1 problem",
        problems=("playbook volume.yml: does not exist",),
    )
    body = notice.body()
    assert (body["event"], body["to_site"], body["operation"]) == ("plan-not-ready", "dc2", None)
    assert body["findings"] == ["playbook volume.yml: does not exist"]
    with pytest.raises(ValueError, match="not a plan evaluation's event"):
        plan_notice("lab", "started", seq=1, at=0.0, by="x", to_site="dc2", verdict="", problems=())
