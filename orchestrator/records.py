"""What the engine remembers of an operation: the operation record and one checkpoint per
step. Both are plain data, serialised to JSON in ZooKeeper so any controller can resume.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class Mode(StrEnum):
    """What an operation does: the plan's kind, recorded with the operation."""

    SWITCHOVER = "switchover"  # both sites up: stop, final sync, break, start
    FAILOVER = "failover"  # the active site may be gone: no final sync, loss possible
    REPROTECT = "reprotect"  # after a failover: mirror back towards the old site


class StepStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # started; a crash leaves it here and resume runs it again
    DONE = "done"
    SKIPPED = "skipped"  # old site unreachable in a failover
    FAILED = "failed"


class OpStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # stopped at a failed step; resume or roll back
    ABORTED = "aborted"  # stopped by an operator at a safe point
    REFUSED = "refused"  # a check or the readiness gate said no before anything changed
    INTERRUPTED = "interrupted"  # the leader lost its lease or died; resume continues


FINISHED_STEP = frozenset({StepStatus.DONE, StepStatus.SKIPPED})
FINISHED_OP = frozenset({OpStatus.SUCCEEDED, OpStatus.ABORTED, OpStatus.REFUSED})

# Legal step transitions. RUNNING→RUNNING is a resume after a crash mid-step;
# FAILED→RUNNING is a resume after a failure. A finished step never changes again:
# that is what makes "no effect applied twice" checkable.
_STEP_TRANSITIONS: dict[StepStatus, frozenset[StepStatus]] = {
    StepStatus.PENDING: frozenset({StepStatus.RUNNING}),
    StepStatus.RUNNING: frozenset(
        {StepStatus.RUNNING, StepStatus.DONE, StepStatus.SKIPPED, StepStatus.FAILED}
    ),
    # FAILED→SKIPPED: an operator's `sitectl skip`, audited, so the operation goes on.
    StepStatus.FAILED: frozenset({StepStatus.RUNNING, StepStatus.SKIPPED}),
    StepStatus.DONE: frozenset(),
    StepStatus.SKIPPED: frozenset(),
}


class IllegalTransition(ValueError):
    pass


def check_transition(old: StepStatus, new: StepStatus) -> None:
    if new not in _STEP_TRANSITIONS[old]:
        raise IllegalTransition(f"a step cannot go from {old} to {new}")


@dataclass(frozen=True)
class StepRecord:
    step_id: str
    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    epoch: int = 0  # the fencing epoch of the writer
    detail: str = ""  # "already true", "skipped: unreachable", the error
    host: str = ""  # who ran it: user@host:pid

    def advance(self, status: StepStatus, *, now: float, epoch: int, **changes: Any) -> StepRecord:
        check_transition(self.status, status)
        if status is StepStatus.RUNNING:
            changes.setdefault("attempts", self.attempts + 1)
            changes.setdefault("started", now)
            changes.setdefault("finished", None)
        else:
            changes.setdefault("finished", now)
        return replace(self, status=status, epoch=epoch, **changes)

    @property
    def duration(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> StepRecord:
        data = json.loads(raw)
        data["status"] = StepStatus(data["status"])
        return cls(**data)


@dataclass(frozen=True)
class OperationRecord:
    id: str
    mode: Mode
    from_site: str
    to_site: str
    started: float
    by: str  # OS user
    host: str
    reason: str
    automatic: bool
    plan_digest: str  # resume refuses a plan that changed under it
    unreachable: tuple[str, ...] = ()
    accept_data_loss: str | None = None
    # A failover told not to wait for the old site's ticket: the operator's reason.
    no_fence_wait: str | None = None
    # A reprotect told to go on although the old site holds what salvage could not
    # carry to the active site: the operator's reason.
    discard_divergent: str | None = None
    # The drill that started the operation (its id), so its notifications say so and its
    # plan holds the custom steps scoped to drills.
    drill: str | None = None
    status: OpStatus = OpStatus.RUNNING
    epoch: int = 0
    finished: float | None = None
    failed_step: str | None = None
    message: str = ""
    abort_requested: bool = False
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    # The switchover this failover continues (`sitectl escalate`).
    escalated_from: str | None = None
    # The operator's request a controller runs it for (requests/NAME): a successor
    # resumes such an operation by itself, as it does an automatic one.
    requested: str | None = None

    @property
    def trigger(self) -> str:
        """Who asked: "automatic", "drill" or "manual" (the plan's trigger)."""
        return "automatic" if self.automatic else "drill" if self.drill else "manual"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Mode(self.mode))  # "failover" from JSON or a caller

    def with_status(self, status: OpStatus, *, now: float, **changes: Any) -> OperationRecord:
        finished = now if status is not OpStatus.RUNNING else None
        return replace(self, status=status, finished=finished, **changes)

    def to_json(self) -> bytes:
        data = asdict(self)
        return json.dumps(data, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> OperationRecord:
        data = json.loads(raw)
        data["status"] = OpStatus(data["status"])
        data["unreachable"] = tuple(data.get("unreachable", ()))
        data["history"] = tuple(data.get("history", ()))
        return cls(**data)


class Verdict(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    SKIP = "skip"  # the step is passed over (`sitectl skip`): neither approved nor rejected


@dataclass(frozen=True)
class Decision:
    """A person's answer to a waiting step (`sitectl approve|reject|skip`)."""

    verdict: Verdict
    by: str
    reason: str
    at: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Decision:
        data = json.loads(raw)
        return cls(
            verdict=Verdict(data["verdict"]),
            by=str(data["by"]),
            reason=str(data["reason"]),
            at=float(data["at"]),
        )


@dataclass(frozen=True)
class ApprovalRequest:
    """What a waiting approval step asks, for `status` and `sitectl approve`."""

    step_id: str
    since: float
    description: str
    approvers: tuple[str, ...] = ()
    timeout: float | None = None
    on_timeout: str = "reject"

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> ApprovalRequest:
        data = json.loads(raw)
        data["approvers"] = tuple(data.get("approvers", ()))
        return cls(**data)
