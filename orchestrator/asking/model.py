"""A request for an operation and the controller's answer to it (pure data).

The CLI writes a request; the leading controller claims it by answering, runs the
operation and closes the answer with the exit code and the line the CLI prints. The
answer's state is an enum with a transition table, like a step's: a claim is made once,
and a closed answer never changes again.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any


class Verb(StrEnum):
    SWITCHOVER = "switchover"
    FAILOVER = "failover"
    REPROTECT = "reprotect"
    RESUME = "resume"


class AnswerState(StrEnum):
    # A controller took the request: it alone runs it (the claim is a create, so two
    # controllers that both believe they lead cannot both take it).
    CLAIMED = "claimed"
    RUNNING = "running"  # the operation is recorded: follow its records
    CLOSED = "closed"  # over, as far as this controller is concerned: exit code and line


_ANSWER_TRANSITIONS: dict[AnswerState, frozenset[AnswerState]] = {
    AnswerState.CLAIMED: frozenset({AnswerState.RUNNING, AnswerState.CLOSED}),
    AnswerState.RUNNING: frozenset({AnswerState.CLOSED}),
    AnswerState.CLOSED: frozenset(),
}


class IllegalAnswer(ValueError):
    pass


@dataclass(frozen=True)
class OperationRequest:
    """What an operator asked for, and who and why: the controller runs it under this
    identity and reason, and both reach its audit log and the operation record."""

    verb: Verb
    by: str  # the operator's OS user
    host: str  # where the operator's sitectl ran (user@host:pid)
    reason: str
    submitted: float  # UNIX time, the operator's clock
    to_site: str | None = None
    operation: str | None = None  # resume: which one (None: the current one)
    accept_data_loss: str | None = None
    no_fence_wait: str | None = None
    discard_divergent: str | None = None
    # Run only this plan: the one the operator confirmed, or the one in `--plan FILE`.
    plan_digest: str | None = None
    plan_file: str | None = None  # the file's name, for the refusal's wording
    drill: str | None = None  # a drill's operation: the drill's id

    def __post_init__(self) -> None:
        object.__setattr__(self, "verb", Verb(self.verb))

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> OperationRequest:
        return cls(**_known_fields(cls, raw, "a request"))

    def describe(self) -> str:
        target = f" to {self.to_site}" if self.to_site else ""
        which = f" {self.operation}" if self.operation else ""
        return f"{self.verb.value}{which}{target} for {self.by} ({self.host}): {self.reason}"


@dataclass(frozen=True)
class RequestAnswer:
    state: AnswerState
    controller: str  # who answered: "SITE user@host:pid"
    at: float
    operation: str | None = None  # the operation's id once known
    exit_code: int | None = None  # CLOSED: what the operator's sitectl exits with
    line: str = ""  # CLOSED: the line it prints (the refusal, the error, the outcome)
    # CLOSED: the executor's figures for the operation (plain values), as --json shows
    figures: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "state", AnswerState(self.state))

    def moved(self, state: AnswerState, at: float, **changes: Any) -> RequestAnswer:
        if state not in _ANSWER_TRANSITIONS[self.state]:
            raise IllegalAnswer(f"an answer cannot go from {self.state} to {state}")
        return replace(self, state=state, at=at, **changes)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> RequestAnswer:
        return cls(**_known_fields(cls, raw, "an answer"))


def _known_fields(cls: type, raw: bytes, what: str) -> dict[str, Any]:
    """The JSON object's fields `cls` has: a field a newer sitectl added is left out, so
    an older controller or follower still reads what it knows."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"{what} is a JSON object")
    return {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
