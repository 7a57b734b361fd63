"""The contract every step implementation fulfils, and what it is handed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.audit import AuditLog
from orchestrator.config.model import Topology
from orchestrator.engine.records import ApprovalRequest, Decision, OperationRecord, StepRecord
from orchestrator.errors import SitectlError
from orchestrator.plan.model import Plan, Step

# notify(event, step id or None, detail): tell the topology's notification targets
# (orchestrator/notify); returns at once and never raises.
Notify = Callable[[str, str | None, str], None]


def no_notice(event: str, step: str | None, detail: str) -> None:
    """Where nobody listens (a test's executor)."""


class Fence(Protocol):
    epoch: int

    def ensure(self) -> None:
        """Raise LeaseLost unless we still lead at our epoch."""

    def interrupted(self) -> str | None:
        """Why the lease cannot be trusted this instant (suspended, lost), or None; must
        not block: a running playbook is cancelled on it."""


class Approvals(Protocol):
    """Where a waiting step asks a person and reads the answer (the operation's records
    in ZooKeeper): asking is fenced by the lease, answering is a person's."""

    def ask(self, request: ApprovalRequest) -> None: ...

    def asked(self, step_id: str) -> ApprovalRequest | None:
        """The request this step made before (a resume after a crash), if any."""

    def answer(self, step_id: str) -> Decision | None: ...

    def forget(self, step_id: str) -> None:
        """Drop the answer (a reject that ended the step), so a resume asks again."""

    def abort_requested(self) -> str | None: ...


class SkippedByOperator(SitectlError):
    """A person passed over the waiting step (`sitectl skip`): checkpointed skipped."""


@dataclass
class StepContext:
    topology: Topology
    plan: Plan
    operation: OperationRecord
    fence: Fence
    artifacts: Path  # per operation: ansible-runner artifacts, probe transcripts
    log: Callable[[str], None]
    # Figures a step measured, for the summary and the drill report (e.g. lag seconds).
    figures: dict[str, object] = field(default_factory=dict)
    # on_task(host, task): a task of the step's own playbook run started on a host (the
    # progress display); set by the executor for the step it runs.
    on_task: Callable[[str, str], None] | None = None
    # cancel(): None while the step's playbook may run on, else the error to stop it with
    # (engine/cancel.py); set by the executor for the step it runs.
    cancel: Callable[[], Exception | None] | None = None
    # records(): the operation's checkpoints as they stand now (a step that depends on
    # how earlier ones ended, e.g. fence/wait); set by the engine.
    records: Callable[[], Mapping[str, StepRecord]] = dict
    # Where a step records a decision of its own beside its transitions (the engine's).
    audit: AuditLog | None = None
    # Where a step that waits for a person asks and reads the answer; set by the engine.
    approvals: Approvals | None = None
    # Tell the operation's notification targets, e.g. an approval step:
    # ctx.notify("approval-needed", step.id, "waiting for `sitectl approve …`").
    notify: Notify = no_notice


class StepHandler(Protocol):
    """check → apply → verify. `check` answers "is it already true?" so that running a
    finished step again changes nothing. Raise Unavailable for transient trouble (it is
    retried), Failed for a permanent one, never a library exception."""

    def check(self, step: Step, ctx: StepContext) -> bool: ...

    def apply(self, step: Step, ctx: StepContext) -> None: ...

    def verify(self, step: Step, ctx: StepContext) -> None: ...
