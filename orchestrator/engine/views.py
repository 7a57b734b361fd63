"""What `sitectl status` and a finished operation show: frozen views of the records, each
with `to_json()` for scripts. The CLI reads their fields; nothing reads a status by string
keys any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from enum import Enum
from typing import Any

from orchestrator.coordination.ticket import Ticket
from orchestrator.records import (
    FINISHED_STEP,
    ApprovalRequest,
    Mode,
    OperationRecord,
    OpStatus,
    StepRecord,
    StepStatus,
)


def _json(view: Any) -> dict[str, Any]:
    """A view's fields in their order, as JSON values."""
    return {f.name: _plain(getattr(view, f.name)) for f in fields(view)}


def _plain(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    return list(value) if isinstance(value, tuple) else value


# The operation record's fields an OperationView shows as they are, in its order.
_FROM_RECORD = (
    "id", "mode", "from_site", "to_site", "status", "started", "finished", "by", "host",
    "reason", "accept_data_loss", "automatic", "epoch",
)  # fmt: skip


@dataclass(frozen=True)
class StepView:
    id: str
    status: StepStatus
    seconds: float | None
    detail: str
    attempts: int

    @classmethod
    def of(cls, record: StepRecord) -> StepView:
        return cls(record.step_id, record.status, record.duration, record.detail, record.attempts)

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class OperationView:
    """The current or last operation, as `sitectl status` shows it."""

    id: str
    mode: Mode
    from_site: str
    to_site: str
    status: OpStatus
    started: float
    finished: float | None
    by: str
    host: str
    reason: str
    accept_data_loss: str | None
    automatic: bool
    epoch: int
    in_progress: bool  # the cluster's current operation, not only its last
    running_steps: tuple[str, ...]
    steps_finished: int
    failed_step: str | None
    message: str
    # The approvals it waits for now: step, since, who may answer, timeout, on_timeout.
    waiting_for: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(
        cls,
        op: OperationRecord,
        records: Mapping[str, StepRecord],
        *,
        in_progress: bool,
        asked: Iterable[ApprovalRequest] = (),
    ) -> OperationView:
        return cls(
            **{name: getattr(op, name) for name in _FROM_RECORD},
            in_progress=in_progress,
            running_steps=tuple(
                sorted(k for k, r in records.items() if r.status is StepStatus.RUNNING)
            ),
            steps_finished=sum(1 for r in records.values() if r.status in FINISHED_STEP),
            failed_step=op.failed_step,
            message=op.message,
            waiting_for=tuple(
                {
                    "step": r.step_id,
                    "since": r.since,
                    "approvers": list(r.approvers),
                    "timeout": r.timeout,
                    "on_timeout": r.on_timeout,
                    "description": r.description,
                }
                for r in asked
                if (rec := records.get(r.step_id)) is not None and rec.status is StepStatus.RUNNING
            ),
        )

    def to_json(self) -> dict[str, Any]:
        return _json(self)


@dataclass(frozen=True)
class StatusView:
    """The cluster as `sitectl status` shows it."""

    cluster: str
    active_site: str
    active_site_recorded: bool  # False: taken from the topology, no operation recorded yet
    lock_holders: tuple[str, ...]
    paused: str | None
    operation: OperationView | None
    # The controllers' own reports (controller/zkstate), as they publish them.
    controllers: tuple[dict[str, Any], ...] | None = None
    ticket: Ticket | None = None  # the site ticket, None when none is recorded yet
    # The leading controller's latest plan evaluation (Evaluation.to_dict()), if any.
    evaluation: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "cluster": self.cluster,
            "active_site": self.active_site,
            "active_site_recorded": self.active_site_recorded,
            "lock_holders": list(self.lock_holders),
            "paused": self.paused,
            "operation": self.operation.to_json() if self.operation else None,
            "ticket": ticket_json(self.ticket),
        }
        if self.controllers is not None:
            data["controllers"] = list(self.controllers)
        if self.evaluation is not None:
            data["evaluation"] = self.evaluation
        return data


def ticket_json(ticket: Ticket | None) -> dict[str, Any] | None:
    """The site ticket for scripts: as recorded, with its expiry."""
    if ticket is None:
        return None
    return {**_json(ticket), "expires_at": ticket.expires_at}


@dataclass(frozen=True)
class OutcomeView:
    """An operation that ran, as `sitectl switchover|failover|resume --json` reports it."""

    op: OperationRecord
    steps: tuple[StepView, ...]  # in the plan's order; steps never started are left out
    figures: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        op: OperationRecord,
        step_ids: Iterable[str],
        records: Mapping[str, StepRecord],
        figures: Mapping[str, object],
    ) -> OutcomeView:
        steps = tuple(StepView.of(records[s]) for s in step_ids if s in records)
        return cls(op, steps, dict(figures))

    def to_json(self) -> dict[str, Any]:
        op = self.op
        return {
            "id": op.id,
            "mode": op.mode.value,
            "from_site": op.from_site,
            "to_site": op.to_site,
            "status": op.status.value,
            "started": op.started,
            "finished": op.finished,
            "failed_step": op.failed_step,
            "message": op.message,
            "accept_data_loss": op.accept_data_loss,
            "no_fence_wait": op.no_fence_wait,
            "discard_divergent": op.discard_divergent,
            "epoch": op.epoch,
            "steps": [s.to_json() for s in self.steps],
            "figures": dict(self.figures),
        }
