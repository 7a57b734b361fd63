"""Asking the leading controller for an operation: submit the request, wait for a
controller to take it, and hand back the operation to follow, or say why there is none.

Used by `sitectl switchover|failover|reprotect|resume` (cli/asked.py) and by a drill's
moves (drill/run.py), so both ask and give up the same way."""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.asking.follow import RECORD_WAIT_S, Follower
from orchestrator.asking.model import RequestAnswer
from orchestrator.errors import SitectlError, Unavailable
from orchestrator.exitcodes import ExitCode

# How long sitectl waits for a controller to take its request before it says none
# answers (a leader looks at least every second; one that just won looks at once).
ANSWER_WAIT_S = 5.0


class NoController(Unavailable):
    """No controller took the request in time; it was withdrawn and nothing started."""


class NoRecord(Unavailable):
    """A controller took the request but recorded no operation in time."""


class RequestRefused(SitectlError):
    """The controller refused the request, or it ended before any operation was
    recorded: `exit_code` and the line to print are the controller's."""

    def __init__(self, answer: RequestAnswer) -> None:
        super().__init__(answer.line)
        self.exit_code = ExitCode(answer.exit_code or ExitCode.OPERATION_FAILED)


@dataclass(frozen=True)
class Taken:
    request: str  # the request's node name
    answer: RequestAnswer  # names the operation
    operation: str


def taken(follower: Follower, name: str, *, wait: float = ANSWER_WAIT_S) -> Taken:
    """Wait for a controller to take request `name` and record its operation. Raises
    NoController (request withdrawn), NoRecord (taken, nothing recorded in time) or
    RequestRefused (the controller's answer)."""
    answer = follower.answer(name, wait)
    if answer is None and follower.requests.withdraw(name):
        raise NoController(
            f"no controller took request {name} within {wait:g} s, so it was withdrawn and "
            "nothing started. Is a controller running (`sitectl controller run`; on the lab "
            "`sitectl lab controllers up`)? `--local` runs the operation in this process "
            "instead."
        )
    claimed = answer
    answer = follower.operation_of(name)
    if answer is None:
        who = f" ({claimed.controller})" if claimed is not None else ""
        raise NoRecord(
            f"the controller that took request {name}{who} recorded no operation within "
            f"{RECORD_WAIT_S:g} s: it may have died while planning, and then nothing "
            "started. `sitectl status` shows whether an operation runs (`sitectl attach` "
            "follows it); if none does, ask again"
        )
    if answer.operation is None:
        raise RequestRefused(answer)
    return Taken(name, answer, answer.operation)
