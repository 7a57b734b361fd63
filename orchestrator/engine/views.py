"""What `sitectl status` and a finished operation show: frozen views of the records, each
with `to_json()` for scripts. The CLI reads their fields; nothing reads a status by string
keys any more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.records import (
    FINISHED_STEP,
    Mode,
    OperationRecord,
    OpStatus,
    StepRecord,
    StepStatus,
)


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
        return {
            "id": self.id,
            "status": self.status.value,
            "seconds": self.seconds,
            "detail": self.detail,
            "attempts": self.attempts,
        }


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

    @classmethod
    def of(
        cls, op: OperationRecord, records: Mapping[str, StepRecord], *, in_progress: bool
    ) -> OperationView:
        return cls(
            id=op.id,
            mode=op.mode,
            from_site=op.from_site,
            to_site=op.to_site,
            status=op.status,
            started=op.started,
            finished=op.finished,
            by=op.by,
            host=op.host,
            reason=op.reason,
            accept_data_loss=op.accept_data_loss,
            automatic=op.automatic,
            epoch=op.epoch,
            in_progress=in_progress,
            running_steps=tuple(
                sorted(k for k, r in records.items() if r.status is StepStatus.RUNNING)
            ),
            steps_finished=sum(1 for r in records.values() if r.status in FINISHED_STEP),
            failed_step=op.failed_step,
            message=op.message,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "mode": self.mode.value,
            "from_site": self.from_site,
            "to_site": self.to_site,
            "status": self.status.value,
            "started": self.started,
            "finished": self.finished,
            "by": self.by,
            "host": self.host,
            "reason": self.reason,
            "accept_data_loss": self.accept_data_loss,
            "automatic": self.automatic,
            "epoch": self.epoch,
            "in_progress": self.in_progress,
            "running_steps": list(self.running_steps),
            "steps_finished": self.steps_finished,
            "failed_step": self.failed_step,
            "message": self.message,
        }


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

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "cluster": self.cluster,
            "active_site": self.active_site,
            "active_site_recorded": self.active_site_recorded,
            "lock_holders": list(self.lock_holders),
            "paused": self.paused,
            "operation": self.operation.to_json() if self.operation else None,
        }
        if self.controllers is not None:
            data["controllers"] = list(self.controllers)
        return data


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
            "epoch": op.epoch,
            "steps": [s.to_json() for s in self.steps],
            "figures": dict(self.figures),
        }
