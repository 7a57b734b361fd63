"""The per-group runner: the unfinished steps of one group of the plan, side by side,
each through its own life (engine/lifecycle.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from orchestrator.engine.cancel import AbortRequested
from orchestrator.engine.lifecycle import StepLife
from orchestrator.engine.records import FINISHED_STEP, OperationRecord, StepRecord, StepStatus
from orchestrator.errors import LeaseLost
from orchestrator.plan.model import Step


def run_group(
    life: StepLife,
    op: OperationRecord,
    steps: tuple[Step, ...],
    records: dict[str, StepRecord],
    versions: dict[str, int],
) -> StepRecord | None:
    """Run the unfinished steps of one group; return the first failure, if any."""
    pending = [s for s in steps if s.id not in records or records[s.id].status not in FINISHED_STEP]
    if len(pending) == 1:
        outcomes = [_outcome(life, op, pending[0], records, versions)]
    else:
        with ThreadPoolExecutor(max_workers=len(pending)) as pool:
            futures = [pool.submit(_outcome, life, op, step, records, versions) for step in pending]
            outcomes = [f.result() for f in futures]
    for outcome in outcomes:
        if isinstance(outcome, LeaseLost):
            raise outcome
    # A step an abort stopped stays running; the loop closes the operation as aborted.
    failures = [o for o in outcomes if isinstance(o, StepRecord) and o.status is StepStatus.FAILED]
    return failures[0] if failures else None


def _outcome(
    life: StepLife,
    op: OperationRecord,
    step: Step,
    records: dict[str, StepRecord],
    versions: dict[str, int],
) -> StepRecord | LeaseLost | AbortRequested:
    # Returned, not raised: a parallel sibling must get to write its own checkpoint.
    try:
        return life.run_step(op, step, records.get(step.id), versions.get(step.id))
    except LeaseLost as exc:
        life.say(f"step {step.id} not run: {exc}")
        return exc
    except AbortRequested as exc:
        life.say(f"step {step.id} stopped where it was: {exc}")
        return exc
