"""The shared playbook run's state: one enum and a transition table (pure).

A shared run (engine/batch.py) lives through these states. It starts in PRELUDE (the
groups before its first playbook step run while ansible-playbook starts), RUNNING once
they are over, and ends in one of the others. Several things can go wrong at once in a
run of side-by-side lanes, and the worse reason wins: a lost lease over sitectl itself
breaking, over a failed step, over a run halted for the executor to go on alone, over
an abort. So a stopping state may move only to a worse one; an event that is not worse
leaves the state as it is (the first failed step's record is the one kept). ENDED (the
main lane passed its end gate, every step is checkpointed) is final: what its lanes'
ansible-playbook runs meet while they wind down no longer matters.

What cannot happen raises IllegalTransition, as a step's record does: the prelude ends
once, before any gate; the end gate opens only in a run that is going (or aborted,
which the end gate does not stop); a run halts only from a gate, after its prelude.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType

from orchestrator.records import IllegalTransition


class RunState(StrEnum):
    PRELUDE = "prelude"  # pre-flight groups run while ansible-playbook starts
    RUNNING = "running"  # the gates answer
    ENDED = "ended"  # the main lane passed its end gate: every step is checkpointed
    ABORTED = "aborted"  # an abort was asked: no further step's gate opens
    HALTED = "halted"  # stopped early: the executor runs what is left on its own
    STOPPED = "stopped"  # a step failed or never ran
    BROKEN = "broken"  # sitectl itself failed (ZooKeeper gone, a bug): raised
    LOST = "lost"  # the lease is gone: raised


class RunEvent(StrEnum):
    PRELUDE_OVER = "prelude over"
    END_PASSED = "end gate passed"
    ABORT_ASKED = "abort asked"
    HALT = "halt"
    STEP_FAILED = "step failed"
    BROKE = "broke"
    LEASE_LOST = "lease lost"


S, E = RunState, RunEvent

# The stopping states, best first: an event moves a run only to a worse one.
_WORSE = (S.ABORTED, S.HALTED, S.STOPPED, S.BROKEN, S.LOST)
_STOPPING_EVENT = {
    E.ABORT_ASKED: S.ABORTED,
    E.HALT: S.HALTED,
    E.STEP_FAILED: S.STOPPED,
    E.BROKE: S.BROKEN,
    E.LEASE_LOST: S.LOST,
}


def _stopping_row(state: RunState) -> dict[RunEvent, RunState]:
    """A stopping state: each stopping event leads to the worse of the two states."""
    rank = _WORSE.index(state)
    return {
        event: target if _WORSE.index(target) > rank else state
        for event, target in _STOPPING_EVENT.items()
    }


_TABLE: dict[RunState, dict[RunEvent, RunState]] = {
    S.PRELUDE: {
        E.PRELUDE_OVER: S.RUNNING,
        **{e: t for e, t in _STOPPING_EVENT.items() if e is not E.HALT},
    },
    S.RUNNING: {E.END_PASSED: S.ENDED, **_STOPPING_EVENT},
    S.ABORTED: {E.PRELUDE_OVER: S.ABORTED, E.END_PASSED: S.ENDED, **_stopping_row(S.ABORTED)},
    **{
        state: {E.PRELUDE_OVER: state, **_stopping_row(state)}
        for state in (S.STOPPED, S.BROKEN, S.LOST)
    },
    S.HALTED: _stopping_row(S.HALTED),
    # Winding down: a lane's run may still end for the lease or an abort.
    S.ENDED: {E.ABORT_ASKED: S.ENDED, E.LEASE_LOST: S.ENDED},
}
TRANSITIONS = MappingProxyType({state: MappingProxyType(row) for state, row in _TABLE.items()})


def advance(state: RunState, event: RunEvent) -> RunState:
    """The state after `event`; IllegalTransition when it cannot happen in `state`."""
    try:
        return TRANSITIONS[state][event]
    except KeyError:
        raise IllegalTransition(f"a shared run cannot meet '{event}' when {state}") from None
