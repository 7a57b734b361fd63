"""The shared run's state machine, every (state, event) pair written out by hand: the
transition each one makes, or None where it cannot happen and must be refused."""

from __future__ import annotations

import pytest

from orchestrator.engine.runstate import TRANSITIONS, RunEvent, RunState, advance
from orchestrator.records import IllegalTransition

S, E = RunState, RunEvent
_ = None  # cannot happen: refused

# columns: prelude over, end passed, abort asked, halt, step failed, broke, lease lost
EVENTS = (E.PRELUDE_OVER, E.END_PASSED, E.ABORT_ASKED, E.HALT, E.STEP_FAILED, E.BROKE, E.LEASE_LOST)
TABLE: dict[RunState, tuple[RunState | None, ...]] = {
    S.PRELUDE: (S.RUNNING, _, S.ABORTED, _, S.STOPPED, S.BROKEN, S.LOST),
    S.RUNNING: (_, S.ENDED, S.ABORTED, S.HALTED, S.STOPPED, S.BROKEN, S.LOST),
    S.ABORTED: (S.ABORTED, S.ENDED, S.ABORTED, S.HALTED, S.STOPPED, S.BROKEN, S.LOST),
    S.HALTED: (_, _, S.HALTED, S.HALTED, S.STOPPED, S.BROKEN, S.LOST),
    S.STOPPED: (S.STOPPED, _, S.STOPPED, S.STOPPED, S.STOPPED, S.BROKEN, S.LOST),
    S.BROKEN: (S.BROKEN, _, S.BROKEN, S.BROKEN, S.BROKEN, S.BROKEN, S.LOST),
    S.LOST: (S.LOST, _, S.LOST, S.LOST, S.LOST, S.LOST, S.LOST),
    S.ENDED: (_, _, S.ENDED, _, _, _, S.ENDED),
}
CASES = [(state, event, row[i]) for state, row in TABLE.items() for i, event in enumerate(EVENTS)]


def test_the_table_covers_every_state_and_event() -> None:
    assert set(TABLE) == set(RunState)
    assert set(EVENTS) == set(RunEvent)
    assert set(TRANSITIONS) == set(RunState)


@pytest.mark.parametrize(
    ("state", "event", "expected"),
    [c for c in CASES if c[2] is not None],
    ids=lambda v: str(v),
)
def test_a_legal_event_moves_the_run(state: RunState, event: RunEvent, expected: RunState) -> None:
    assert advance(state, event) is expected


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s, e, expected in CASES if expected is None],
    ids=lambda v: str(v),
)
def test_an_impossible_event_is_refused(state: RunState, event: RunEvent) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot meet '{event}' when {state}"):
        advance(state, event)


def test_the_worse_reason_wins_whatever_the_order() -> None:
    """Two lanes failing at once: the run ends in the worst of their reasons."""
    stopping = [E.ABORT_ASKED, E.HALT, E.STEP_FAILED, E.BROKE, E.LEASE_LOST]
    for first in stopping:
        for second in stopping:
            one = advance(advance(S.RUNNING, first), second)
            other = advance(advance(S.RUNNING, second), first)
            assert one is other, (first, second)


def test_nothing_leads_back_to_the_prelude_or_out_of_an_end() -> None:
    for row in TRANSITIONS.values():
        assert S.PRELUDE not in row.values()
    assert set(TRANSITIONS[S.ENDED].values()) == {S.ENDED}
