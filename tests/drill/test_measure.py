"""Figures and verdicts from recorded drills: tables of cases, no servers."""

from __future__ import annotations

import pytest

from orchestrator.drill import measure
from orchestrator.drill.model import Attempt, Canary, Leg
from tests.drill.recorded import at, drill, leg, mail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", {}),
        ("rto=90s,rpo=0", {"rto": 90.0, "rpo": 0.0}),
        ("rto=5m", {"rto": 300.0}),
        (" rpo = 500ms ", {"rpo": 0.5}),
        ("rto=1.5h,", {"rto": 5400.0}),
    ],
)
def test_targets_parse(text: str, expected: dict[str, float]) -> None:
    assert measure.parse_targets(text) == expected


@pytest.mark.parametrize("text", ["rto:5", "foo=1", "rto=fast", "rto=-1s"])
def test_bad_targets_name_the_part(text: str) -> None:
    with pytest.raises(measure.BadTargets, match="NAME=DURATION"):
        measure.parse_targets(text)


def test_targets_say_where_they_came_from() -> None:
    given = measure.targets({"rto": 60.0})
    assert (given.rto_s, given.rpo_s) == (60.0, 0.0)
    assert given.source["rto"] == "--targets"
    assert given.source["rpo"].startswith("default")


def _attempt(t: float, site: str | None, ok: bool) -> Attempt:
    return Attempt(at(t), site, "", ok)


@pytest.mark.parametrize(
    ("attempts", "seconds", "why"),
    [
        # accepted at dc1 until 6, refused, accepted at dc2 from 15.5
        ([_attempt(5, "dc1", True), _attempt(6, "dc1", True), _attempt(9, "dc1", False),
          _attempt(15.5, "dc2", True), _attempt(16, "dc2", True)], 9.5, ""),
        # DNS flapped to dc2 early: the RTO still runs from the LAST write at dc1
        ([_attempt(3, "dc2", True), _attempt(6, "dc1", True), _attempt(15.5, "dc2", True)],
         9.5, ""),
        ([_attempt(5, "dc1", False), _attempt(15, "dc2", True)], None, "never reached dc1"),
        ([_attempt(5, "dc1", True), _attempt(15, None, False)], None, "no write was accepted"),
        ([], None, "never reached dc1"),
    ],
)
def test_rto(attempts: list[Attempt], seconds: float | None, why: str) -> None:
    got = measure.rto(Leg("there", "dc1", "dc2", attempts=attempts))
    assert got.seconds == pytest.approx(seconds) if seconds is not None else got.seconds is None
    assert why in got.why


def _series(found: list[bool | None], start: float = 0.0) -> list[Canary]:
    return [mail(f"c{n}", "dc1", start + n, f) for n, f in enumerate(found)]


@pytest.mark.parametrize(
    ("found", "seconds", "lower_bound", "lost"),
    [
        ([True] * 5, 0.0, False, 0),
        # c3, c4 lost; the newest survivor before them is c2 (t=2); last write t=4
        ([True, True, True, False, False], 4 - 2, False, 2),
        # a lost write in the middle: the data from the survivor before it is at risk
        ([True, False, True, True, True], 4 - 0, False, 1),
        # everything lost: no recovery point among the canaries, so a lower bound
        ([False] * 5, 4.0, True, 5),
        ([None] * 5, None, False, 0),  # never checked: unknown, not zero
        ([True, True, None], None, False, 0),
    ],
)
def test_rpo(found: list[bool | None], seconds: float | None, lower_bound: bool,
             lost: int) -> None:
    got = measure.rpo(Leg("there", "dc1", "dc2", canaries=_series(found)))
    assert (got.seconds, got.lower_bound, got.lost) == (seconds, lower_bound, lost)


def test_rpo_is_set_by_the_worst_replicator_not_by_others_that_kept_up() -> None:
    # mail c0..c3 at t=0..3, c1 and c2 lost; an LDAP change at t=10 survived. The LDAP
    # write is neither mail's recovery point nor the end of mail's lost span.
    series = [*_series([True, False, False, True]), mail("token", "dc1", 10, True, "ldap")]
    got = measure.rpo(Leg("there", "dc1", "dc2", canaries=series))
    assert (got.seconds, got.lower_bound, got.lost) == (3 - 0, False, 2)


def test_rpo_counts_only_writes_made_at_the_old_site() -> None:
    carried = [mail("written at dc2", "dc2", 0, False)]
    got = measure.rpo(Leg("there", "dc1", "dc2", canaries=_series([True]) + carried))
    assert (got.lost, got.checked, got.by_kind) == (0, 1, {"smtp": [0, 1]})


PASSING = drill(leg("there", "dc1", "dc2", 0), leg("back", "dc2", "dc1", 60),
                failback=True, active="dc1")


@pytest.mark.parametrize(
    ("record", "passed", "failure"),
    [
        (PASSING, True, None),
        (drill(leg("there", "dc1", "dc2", 0)), True, None),
        (drill(leg("there", "dc1", "dc2", 0, lost=frozenset({4, 5}))), False,
         "dc1→dc2: 3 of 6 writes lost, RPO"),
        # the same loss within a looser target passes the RPO (span 0.4 s ≤ 10 s)
        (drill(leg("there", "dc1", "dc2", 0, lost=frozenset({5})), rpo=10), True, None),
        (drill(leg("there", "dc1", "dc2", 0), rto=5), False,
         "dc1→dc2: RTO 9.5 s over the 5 s target"),
        (drill(leg("there", "dc1", "dc2", 0, status="failed",
                   failed_step="start-services/dc2/mta"), stopped="switchover failed"),
         False, "switchover dc1→dc2 failed at step start-services/dc2/mta"),
        (drill(leg("there", "dc1", "dc2", 0), failback=True), False, "1 of 2 legs ran"),
        (drill(leg("there", "dc1", "dc2", 0), leg("back", "dc2", "dc1", 60),
               failback=True, active="dc2"), False, "dc2 is active at the end, not dc1"),
    ],
)
def test_verdict(record: object, passed: bool, failure: str | None) -> None:
    result = measure.verdict(record)  # type: ignore[arg-type]
    assert result.passed is passed, result.failures
    if failure:
        assert any(failure in f for f in result.failures), result.failures
    else:
        assert result.failures == ()


def test_a_leg_the_drill_never_reached_adds_no_figures_of_its_own() -> None:
    stopped = drill(leg("there", "dc1", "dc2", 0), Leg("back", "dc2", "dc1"), failback=True,
                    stopped="dc1 is not in sync after the reprotect")
    result = measure.verdict(stopped)
    assert not result.passed
    assert not any("RTO" in f or "RPO" in f for f in result.failures), result.failures


def test_figures_of_a_passing_failback_drill() -> None:
    there, back = measure.verdict(PASSING).legs
    assert there.rto.seconds == pytest.approx(9.5)
    assert (there.rpo.seconds, there.rpo.lost, there.rpo.checked) == (0.0, 0, 6)
    assert back.operation_seconds == pytest.approx(15.1)
