"""The one JSON payload every notification carries (docs/notifications.md): pure data.

Every payload has the same keys, null where an event has nothing to say, so a receiver
reads one shape. `seq` counts the events of one run of an operation from 1; a resume is
a new run under a higher `epoch`, so (epoch, seq) orders every event of an operation.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.records import OperationRecord, OpStatus

SCHEMA = "sitectl.event/v1"
# In the order an operation may send them; split-brain comes from a controller's probes.
EVENTS = (
    "started",
    "resumed",
    "step-failed",
    "approval-needed",
    "finished",
    "failed",
    "split-brain",
    # The leading controller's plan evaluation (orchestrator/evaluate) changed its verdict.
    "plan-not-ready",
    "plan-ready",
)
# Sent by a controller, never by an operation.
CONTROLLER_EVENTS = frozenset({"split-brain", "plan-not-ready", "plan-ready"})
TRIGGERS = ("manual", "automatic", "drill")


def trigger_of(op: OperationRecord) -> str:
    """Who set the operation going: a drill, a controller, or a person."""
    if op.drill:
        return "drill"
    return "automatic" if op.automatic else "manual"


def closing_event(status: OpStatus) -> str:
    """`finished` for success; `failed` for every other way an operation ends (its
    `status` says which: failed, refused, aborted, interrupted)."""
    return "finished" if status is OpStatus.SUCCEEDED else "failed"


def iso_utc(when: float) -> str:
    """2026-12-06T22:40:01.123Z"""
    stamp = datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True)
class Notice:
    """One event as sent: `body()` is the JSON document."""

    event: str
    seq: int
    at: float
    cluster: str
    detail: str
    operation: str | None = None
    epoch: int | None = None
    mode: str | None = None
    trigger: str | None = None
    drill: str | None = None
    from_site: str | None = None
    to_site: str | None = None
    by: str | None = None
    reason: str | None = None
    step: str | None = None
    status: str | None = None
    findings: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "event": self.event,
            "seq": self.seq,
            "at": iso_utc(self.at),
            "cluster": self.cluster,
            "operation": self.operation,
            "epoch": self.epoch,
            "mode": self.mode,
            "trigger": self.trigger,
            "drill": self.drill,
            "from_site": self.from_site,
            "to_site": self.to_site,
            "by": self.by,
            "reason": self.reason,
            "step": self.step,
            "status": self.status,
            "detail": self.detail,
            "findings": list(self.findings),
        }

    def to_json(self) -> str:
        return json.dumps(self.body(), sort_keys=False)


def operation_notice(
    op: OperationRecord,
    cluster: str,
    event: str,
    *,
    seq: int,
    at: float,
    detail: str,
    step: str | None = None,
    status: str | None = None,
    epoch: int | None = None,
) -> Notice:
    """An event of operation `op`."""
    if event not in EVENTS or event in CONTROLLER_EVENTS:
        raise ValueError(f"{event!r} is not an operation's event")
    return Notice(
        event=event,
        seq=seq,
        at=at,
        cluster=cluster,
        detail=detail,
        operation=op.id,
        epoch=op.epoch if epoch is None else epoch,
        mode=op.mode.value,
        trigger=trigger_of(op),
        drill=op.drill,
        from_site=op.from_site,
        to_site=op.to_site,
        by=op.by,
        reason=op.reason,
        step=step,
        status=status,
    )


def split_brain_notice(
    cluster: str,
    *,
    seq: int,
    at: float,
    vantage: str,
    by: str,
    active_site: str | None,
    findings: tuple[str, ...],
) -> Notice:
    """Two sites serving, as the controller of `vantage` sees it: no operation."""
    return Notice(
        event="split-brain",
        seq=seq,
        at=at,
        cluster=cluster,
        detail=f"{vantage}'s controller sees two sites serving ({active_site or 'no site'} "
        f"recorded active): {'; '.join(findings)}",
        by=by,
        findings=findings,
    )


def plan_notice(
    cluster: str,
    event: str,
    *,
    seq: int,
    at: float,
    by: str,
    to_site: str,
    verdict: str,
    problems: tuple[str, ...],
) -> Notice:
    """The leading controller's evaluation of the move to `to_site` turned (`plan-not-ready`)
    or came back (`plan-ready`); `problems`: one line per check that failed."""
    if event not in ("plan-not-ready", "plan-ready"):
        raise ValueError(f"{event!r} is not a plan evaluation's event")
    return Notice(
        event=event,
        seq=seq,
        at=at,
        cluster=cluster,
        detail=verdict,
        by=by,
        to_site=to_site,
        findings=problems,
    )


def environment(body: Mapping[str, Any]) -> dict[str, str]:
    """The payload as a command's SITECTL_* variables: SITECTL_EVENT, SITECTL_SEQ, … (a
    null is left out, a list is its JSON)."""
    env: dict[str, str] = {}
    for key, value in body.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        env[f"SITECTL_{key.upper()}"] = text
    return env
