"""Following an operation from its records, wherever it runs: what `sitectl switchover`
shows once the controller took the request, and what `sitectl attach` shows.

The follower reads what the executor writes (the operation record, its step
checkpoints, its logged sentences) and tells its display what changed; it never
changes anything itself. It ends when the operation has ended for a person: succeeded,
failed, aborted or refused. An operation a controller ran that was interrupted (its
leader died or lost its lease) is followed on: the next leader resumes it by itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from orchestrator.asking.model import AnswerState, RequestAnswer
from orchestrator.asking.store import RequestStore
from orchestrator.coordination.store import ZkStore
from orchestrator.plan.model import Step
from orchestrator.records import FINISHED_OP, OperationRecord, OpStatus, StepRecord, StepStatus

if TYPE_CHECKING:
    from orchestrator.engine.lifecycle import Events

POLL_S = 0.1
# A controller records the operation once it has planned it and taken the lease: seconds.
RECORD_WAIT_S = 60.0
engine_log = logging.getLogger("sitectl.engine")


class Display(Protocol):
    def step_started(self, record: StepRecord) -> None: ...
    def step_finished(self, record: StepRecord) -> None: ...
    def said(self, sentence: str) -> None: ...


def ended(op: OperationRecord) -> bool:
    """Over for the person following it: nothing will move it on by itself."""
    if op.status in FINISHED_OP or op.status is OpStatus.FAILED:
        return True
    # Interrupted: a controller's successor resumes an operation a controller ran; one
    # run in an operator's shell waits for `sitectl resume`.
    return op.status is OpStatus.INTERRUPTED and not (op.automatic or op.requested)


@dataclass
class Follower:
    store: ZkStore
    requests: RequestStore
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    _steps: dict[str, StepStatus] = field(default_factory=dict)
    _said: str = ""

    def answer(self, name: str, wait: float) -> RequestAnswer | None:
        """The controller's answer to request `name`, waiting up to `wait` seconds."""
        deadline = self.clock() + wait
        while True:
            found = self.requests.answer(name)
            if found is not None:
                return found[0]
            if self.clock() >= deadline:
                return None
            self.sleep(POLL_S)

    def operation_of(self, name: str, wait: float = RECORD_WAIT_S) -> RequestAnswer | None:
        """The answer once it names the operation, or once it is closed without one;
        None when the controller that took it has recorded nothing within `wait` s (it
        may have died while planning: nothing resumes an operation never recorded)."""
        deadline = self.clock() + wait
        while True:
            found = self.requests.answer(name)
            if found is not None and (found[0].operation or found[0].state is AnswerState.CLOSED):
                return found[0]
            if self.clock() >= deadline:
                return None
            self.sleep(POLL_S)

    def follow(self, op_id: str, display: Display) -> OperationRecord:
        """Tell `display` every step and sentence as the executor records them, until
        the operation has ended; return its last record."""
        while True:
            op, _ = self.store.operation(op_id)
            self.look(op_id, display)
            if ended(op):
                self.look(op_id, display)  # what was written just before the end
                return op
            self.sleep(POLL_S)

    def look(self, op_id: str, display: Display) -> None:
        for node, sentence in self.requests.sentences(op_id, self._said):
            display.said(sentence)
            self._said = node
        records = self.store.records(op_id)
        for step_id, record in sorted(records.items(), key=lambda kv: kv[1].started or 0.0):
            before = self._steps.get(step_id)
            if before is record.status:
                continue
            self._steps[step_id] = record.status
            if record.status is StepStatus.RUNNING:
                display.step_started(record)
            elif record.status is not StepStatus.PENDING:
                if before is None:
                    display.step_started(record)
                display.step_finished(record)


class PlanEvents:
    """A follower's display that speaks as the engine does in-process: each record told
    as its plan step's event (so the same spinners draw it), each sentence logged on the
    engine's logger (so the same handler prints it)."""

    def __init__(self, steps: Mapping[str, Step], events: Events) -> None:
        self._steps = steps
        self._events = events

    def step_started(self, record: StepRecord) -> None:
        step = self._steps.get(record.step_id)
        if step is not None:
            self._events.step_started(step)

    def step_finished(self, record: StepRecord) -> None:
        step = self._steps.get(record.step_id)
        if step is not None:
            self._events.step_finished(step, record)

    def said(self, sentence: str) -> None:
        engine_log.info("%s", sentence)
