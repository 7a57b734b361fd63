"""The executor: the only code that changes the world.

For each group of the plan, in order: run its steps through their lifecycle
(engine/lifecycle.py) — on their own, side by side (engine/groups.py), or a stretch of
host steps in one shared ansible-playbook run that waits at gates (engine/batch.py). Each
step: make sure we still hold the lease → skip it if its checkpoint says finished →
`check` (already true?) → `apply` → `verify` → write the checkpoint, fenced by the epoch.
A crash anywhere leaves checkpoints from which the next run continues; a finished step is
never run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from orchestrator.engine.batch import BatchRun, batch_chain
from orchestrator.engine.groups import run_group
from orchestrator.engine.lifecycle import VERIFY_POLLS, Events, NoEvents, StepLife, Store
from orchestrator.engine.progress import (
    abort_advice,
    changed_anything,
    next_group,
    recovery_advice,
    where_is_the_service,
)
from orchestrator.engine.records import Mode, OperationRecord, OpStatus, StepRecord
from orchestrator.plan.model import Step

__all__ = ["VERIFY_POLLS", "Events", "Executor", "NoEvents", "Store"]


@dataclass
class Executor(StepLife):
    # Consecutive playbook steps share one ansible-playbook run (engine/batch.py).
    batch: bool = True
    _solo: set[str] = field(default_factory=set)  # steps batching gave back to run alone

    def run(self, op_id: str) -> OperationRecord:
        op, op_version = self.store.operation(op_id)
        op = replace(op, status=OpStatus.RUNNING, epoch=self.lease.epoch, finished=None)
        op_version = self.store.update_operation(self.lease, op, op_version)
        closed = None
        while closed is None:
            closed = self._next(op)
        self.store.update_operation(self.lease, closed, op_version)
        self.audit.write(
            "operation." + closed.status.value,
            op=closed.id,
            epoch=self.lease.epoch,
            reason=closed.reason,
            detail=closed.message,
        )
        self.wound_down()
        return closed

    def _next(self, op: OperationRecord) -> OperationRecord | None:
        """Run the next stretch of the plan; the closed operation once it is over."""
        found = self.store.steps(op.id)
        records = {k: r for k, (r, _) in found.items()}
        versions = {k: v for k, (_, v) in found.items()}
        who = self.store.abort_requested(op.id)
        if who is not None:
            return self._aborted(op, who, records)
        upcoming = next_group(self.plan, records)
        if upcoming is None:
            return self._succeeded(op)
        index, group = upcoming
        units = (
            batch_chain(self.plan, index, records, self.handlers, self._solo) if self.batch else []
        )
        if units:
            failed = BatchRun(self, op, units, records, versions, self._solo).run()
        else:
            failed = self.run_group(op, group.steps, records, versions)
        return None if failed is None else self._failed(op, failed)

    def _aborted(
        self, op: OperationRecord, who: str, records: dict[str, StepRecord]
    ) -> OperationRecord:
        op = op.with_status(
            OpStatus.ABORTED,
            now=self.clock(),
            message=f"aborted by {who}: {where_is_the_service(self.plan, records)}; "
            + abort_advice(self.plan, records),
        )
        self.store.clear_current(self.lease)  # over: a new operation may start
        self.say(f"operation {op.id} stopped at a safe point because {who} asked")
        return op

    def _succeeded(self, op: OperationRecord) -> OperationRecord:
        outcome = (
            f"{self.plan.from_site} is active and protects towards {self.plan.to_site}"
            if self.plan.mode is Mode.REPROTECT
            else f"{self.plan.to_site} is active"
        )
        op = op.with_status(OpStatus.SUCCEEDED, now=self.clock(), message=outcome)
        self.store.clear_current(self.lease)
        took = f" after {op.finished - op.started:.1f} s" if op.finished else ""
        self.say(f"operation {op.id} finished: {outcome}{took}")
        return op

    def _failed(self, op: OperationRecord, failed: StepRecord) -> OperationRecord:
        after = self.store.records(op.id)
        if not changed_anything(self.plan, after):
            # Nothing changed: the operation is over, and a new one (say, with
            # --accept-data-loss) may start at once.
            op = op.with_status(
                OpStatus.REFUSED,
                now=self.clock(),
                failed_step=failed.step_id,
                message=(
                    # Salvage may have added to the active site what only the old one
                    # held; the protection itself is as it was.
                    f"refused before the mirrors were touched: {failed.detail}"
                    if self.plan.mode is Mode.REPROTECT
                    else f"refused before any change: {failed.detail}"
                ),
            )
            self.store.clear_current(self.lease)
            self.say(f"operation {op.id} refused by {failed.step_id}: nothing changed")
            return op
        op = op.with_status(
            OpStatus.FAILED,
            now=self.clock(),
            failed_step=failed.step_id,
            message=f"step {failed.step_id} failed: {failed.detail}. "
            f"{where_is_the_service(self.plan, after)}; "
            + recovery_advice(self.plan, after, op.id),
        )
        self.say(f"operation {op.id} stopped: step {failed.step_id} failed")
        return op

    def run_group(
        self,
        op: OperationRecord,
        steps: tuple[Step, ...],
        records: dict[str, StepRecord],
        versions: dict[str, int],
    ) -> StepRecord | None:
        """Run the unfinished steps of one group; return the first failure, if any."""
        return run_group(self, op, steps, records, versions)
