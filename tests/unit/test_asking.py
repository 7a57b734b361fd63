"""The pure parts of asking the controller for an operation: the desk's triage (by its
sentence and the operator's line), the answer's state machine, when a follower stops."""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.asking.follow import ended
from orchestrator.asking.model import (
    AnswerState,
    IllegalAnswer,
    OperationRequest,
    RequestAnswer,
    Verb,
)
from orchestrator.asking.triage import Holding, Take, Triage, triage
from orchestrator.exitcodes import ExitCode
from orchestrator.records import Mode, OperationRecord, OpStatus

REQUEST = OperationRequest(
    verb=Verb.SWITCHOVER,
    by="alice",
    host="alice@ops1:4242",
    reason="change 4711",
    submitted=1_000.0,
    to_site="dc2",
)
HOLDING = Holding(
    "dc1 root@ctl1:77",
    "operation 20261207T050000Z-ab12 (reprotect dc2→dc1)",
    "bob (bob@ops2:9)",
    "failback",
)

CASES = [
    (
        "nothing runs: take it",
        REQUEST,
        1.0,
        None,
        Triage(
            Take.RUN,
            "took request req-1: switchover to dc2 for alice (alice@ops1:4242): change 4711",
        ),
    ),
    (
        "an operation runs: busy, naming who holds it, what and for whom",
        REQUEST,
        1.0,
        HOLDING,
        Triage(
            Take.REFUSE,
            "refused request req-1 (switchover to dc2 for alice (alice@ops1:4242): change "
            "4711): operation 20261207T050000Z-ab12 (reprotect dc2→dc1) runs under dc1 "
            "root@ctl1:77",
            ExitCode.LOCKED,
            "busy: operation 20261207T050000Z-ab12 (reprotect dc2→dc1) runs under dc1 "
            "root@ctl1:77, asked by bob (bob@ops2:9) (failback); nothing was started — "
            "`sitectl attach` follows it",
        ),
    ),
    (
        "the lease held before the operation is recorded",
        REQUEST,
        1.0,
        Holding("root@ctl2:5"),
        Triage(
            Take.REFUSE,
            "refused request req-1 (switchover to dc2 for alice (alice@ops1:4242): change "
            "4711): an operation runs under root@ctl2:5",
            ExitCode.LOCKED,
            "busy: an operation runs under root@ctl2:5; nothing was started — `sitectl "
            "attach` follows it",
        ),
    ),
    (
        "too old: whoever asked stopped waiting long ago",
        REQUEST,
        31.0,
        None,
        Triage(
            Take.REFUSE,
            "refused request req-1 (switchover to dc2 for alice (alice@ops1:4242): change "
            "4711): it waited 31 s for an answer, more than 30 s",
            ExitCode.OPERATION_FAILED,
            "refused: request req-1 waited 31 s for a controller, more than 30 s; nothing "
            "was started — ask again",
        ),
    ),
    (
        "unreadable",
        None,
        1.0,
        None,
        Triage(
            Take.REFUSE,
            "refused request req-1: it is not a request sitectl can read",
            ExitCode.BAD_INPUT,
            "refused: request req-1 is not one this controller can read — is the sitectl "
            "that wrote it another version?",
        ),
    ),
    (
        "a resume names its operation",
        replace(REQUEST, verb=Verb.RESUME, to_site=None, operation="op-9", reason="go on"),
        1.0,
        None,
        Triage(Take.RUN, "took request req-1: resume op-9 for alice (alice@ops1:4242): go on"),
    ),
]


@pytest.mark.parametrize(
    ("request_", "age", "holding", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_triage(
    request_: OperationRequest | None, age: float, holding: Holding | None, expected: Triage
) -> None:
    assert triage(request_, "req-1", age, holding, 30.0) == expected


def test_a_request_and_an_answer_survive_json_and_ignore_fields_they_do_not_know() -> None:
    assert OperationRequest.from_json(REQUEST.to_json()) == REQUEST
    answer = RequestAnswer(AnswerState.CLOSED, "dc1 x", 5.0, "op", 3, "busy", {"a": 1})
    assert RequestAnswer.from_json(answer.to_json()) == answer
    newer = b'{"verb": "reprotect", "by": "a", "host": "h", "reason": "r", "submitted": 1, "x": 2}'
    assert OperationRequest.from_json(newer).verb is Verb.REPROTECT
    with pytest.raises(ValueError):
        OperationRequest.from_json(
            b'{"verb": "delete-everything", "by": "a", "host": "h", "reason": "r", "submitted": 1}'
        )


@pytest.mark.parametrize(
    ("before", "after", "legal"),
    [
        (AnswerState.CLAIMED, AnswerState.RUNNING, True),
        (AnswerState.CLAIMED, AnswerState.CLOSED, True),
        (AnswerState.RUNNING, AnswerState.CLOSED, True),
        (AnswerState.RUNNING, AnswerState.CLAIMED, False),
        (AnswerState.CLOSED, AnswerState.RUNNING, False),
        (AnswerState.CLOSED, AnswerState.CLOSED, False),
    ],
)
def test_an_answer_moves_only_forward(before: AnswerState, after: AnswerState, legal: bool) -> None:
    answer = RequestAnswer(before, "dc1 x", 1.0)
    if legal:
        assert answer.moved(after, 2.0).state is after
    else:
        with pytest.raises(IllegalAnswer):
            answer.moved(after, 2.0)


def _op(
    status: OpStatus, *, automatic: bool = False, requested: str | None = None
) -> OperationRecord:
    return OperationRecord(
        id="op", mode=Mode.SWITCHOVER, from_site="dc1", to_site="dc2", started=1.0, by="a",
        host="h", reason="r", automatic=automatic, plan_digest="d", status=status,
        requested=requested,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("op", "over"),
    [
        (_op(OpStatus.RUNNING, requested="req-1"), False),
        (_op(OpStatus.SUCCEEDED, requested="req-1"), True),
        (_op(OpStatus.FAILED, requested="req-1"), True),
        (_op(OpStatus.ABORTED), True),
        (_op(OpStatus.REFUSED), True),
        # A controller's successor resumes what a controller ran: follow on.
        (_op(OpStatus.INTERRUPTED, requested="req-1"), False),
        (_op(OpStatus.INTERRUPTED, automatic=True), False),
        # Run in an operator's shell: nobody goes on with it but a person.
        (_op(OpStatus.INTERRUPTED), True),
    ],
    ids=lambda v: getattr(v, "status", v),
)
def test_a_follower_stops_when_nothing_moves_the_operation_on(
    op: OperationRecord, over: bool
) -> None:
    assert ended(op) is over


class _Claimed:
    """A request store whose answer stays `claimed`: the controller that took the
    request died before it recorded an operation."""

    def answer(self, name: str) -> tuple[RequestAnswer, int]:
        return RequestAnswer(AnswerState.CLAIMED, "dc1 root@ctl1:77", 1.0), 0


def test_a_claim_that_records_nothing_is_waited_for_a_bounded_time() -> None:
    from orchestrator.asking.follow import Follower

    now = [0.0]
    follower = Follower(
        store=None,  # type: ignore[arg-type]  # not read while waiting for the record
        requests=_Claimed(),  # type: ignore[arg-type]
        sleep=lambda s: now.__setitem__(0, now[0] + s),
        clock=lambda: now[0],
    )
    assert follower.operation_of("req-1", wait=60.0) is None
    assert 60.0 <= now[0] < 60.5
