"""In-memory stand-ins for the executor's store and fence: pure-logic tests only.
The real ZooKeeper store is tested against a real ensemble in tests/coordination."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.coordination.ticket import Ticket
from orchestrator.engine.progress import plan_digest
from orchestrator.engine.records import ApprovalRequest, Decision, OperationRecord, StepRecord
from orchestrator.errors import Conflict, LeaseLost
from orchestrator.plan.model import Plan, Step


@dataclass
class MemoryStore:
    ops: dict[str, tuple[OperationRecord, int]] = field(default_factory=dict)
    step_records: dict[str, dict[str, tuple[StepRecord, int]]] = field(default_factory=dict)
    aborted_by: str | None = None
    aborted_now: bool = False  # the abort asked the step under way to stop at once
    current: str | None = None
    writes: list[StepRecord] = field(default_factory=list)

    def operation(self, op_id: str) -> tuple[OperationRecord, int]:
        return self.ops[op_id]

    def update_operation(self, lease: Any, op: OperationRecord, version: int) -> int:
        lease.ensure()
        if self.ops[op.id][1] != version:
            raise Conflict(op.id)
        self.ops[op.id] = (op, version + 1)
        return version + 1

    def steps(self, op_id: str) -> dict[str, tuple[StepRecord, int]]:
        return dict(self.step_records.get(op_id, {}))

    def records(self, op_id: str) -> dict[str, StepRecord]:
        return {k: r for k, (r, _) in self.steps(op_id).items()}

    def write_step(self, lease: Any, op_id: str, record: StepRecord, version: int | None) -> int:
        lease.ensure()
        existing = self.step_records.setdefault(op_id, {}).get(record.step_id)
        if (existing[1] if existing else None) != version:
            raise Conflict(record.step_id)
        new = 0 if version is None else version + 1
        self.step_records[op_id][record.step_id] = (record, new)
        self.writes.append(record)
        return new

    def abort_requested(self, op_id: str) -> str | None:
        return self.aborted_by

    def abort_now(self, op_id: str) -> str | None:
        return self.aborted_by if self.aborted_now else None

    def clear_current(self, lease: Any) -> None:
        self.current = None

    # What the operation service (engine/operation.py) reads besides the executor.
    paths: Any = None
    active: str | None = None

    def current_operation(self) -> str | None:
        return self.current

    def request_abort(self, op_id: str, who: str, *, now: bool = False) -> None:
        self.aborted_by = self.aborted_by or who  # the first request stands
        self.aborted_now = self.aborted_now or now

    def operation_ids(self) -> list[str]:
        return sorted(self.ops)

    def active_site(self) -> str | None:
        return self.active

    def lock_holders(self) -> list[str]:
        return []

    def paused(self) -> str | None:
        return None

    def ticket(self) -> Ticket | None:
        return None

    # Approvals (engine/steps/approval.py): asked under the lease, answered by a person.
    asked: dict[str, ApprovalRequest] = field(default_factory=dict)
    answers: dict[str, Decision] = field(default_factory=dict)

    def request_approval(self, lease: Any, op_id: str, request: ApprovalRequest) -> None:
        lease.ensure()
        self.asked[request.step_id] = request

    def approval_requests(self, op_id: str) -> list[ApprovalRequest]:
        return sorted(self.asked.values(), key=lambda r: r.since)

    def decide(self, op_id: str, step_id: str, decision: Decision) -> Decision:
        return self.answers.setdefault(step_id, decision)  # the first answer stands

    def decision(self, op_id: str, step_id: str) -> Decision | None:
        return self.answers.get(step_id)

    def clear_decision(self, lease: Any, op_id: str, step_id: str) -> None:
        lease.ensure()
        self.answers.pop(step_id, None)


@dataclass
class FakeFence:
    epoch: int = 7
    lost_after_ensures: int | None = None
    ensures: int = 0

    def ensure(self) -> None:
        self.ensures += 1
        if self.lost_after_ensures is not None and self.ensures > self.lost_after_ensures:
            raise LeaseLost("fencing epoch moved from 7 to 8")

    def interrupted(self) -> str | None:
        return None


@dataclass
class ScriptedHandler:
    """Behaviour per step id: already true, an error on every apply, or errors on the
    first applies only (then success)."""

    already: set[str] = field(default_factory=set)
    always: dict[str, Exception] = field(default_factory=dict)
    first: dict[str, list[Exception]] = field(default_factory=dict)
    verify_errors: dict[str, list[Exception]] = field(default_factory=dict)
    applied: list[str] = field(default_factory=list)

    def check(self, step: Step, ctx: Any) -> bool:
        return step.id in self.already

    def apply(self, step: Step, ctx: Any) -> None:
        if step.id in self.always:
            raise self.always[step.id]
        if self.first.get(step.id):
            raise self.first[step.id].pop(0)
        self.applied.append(step.id)

    def verify(self, step: Step, ctx: Any) -> None:
        errors = self.verify_errors.get(step.id)
        if errors:
            raise errors.pop(0)


def operation_record(
    plan: Plan, op_id: str = "20261122T140000Z-ab12", reason: str = "test"
) -> OperationRecord:
    """The record `start_operation` writes for `plan`, by an operator `ops` on `box`."""
    return OperationRecord(
        id=op_id,
        mode=plan.mode,
        from_site=plan.from_site,
        to_site=plan.to_site,
        started=1000.0,
        by="ops",
        host="box",
        reason=reason,
        automatic=False,
        plan_digest=plan_digest(plan),
    )
