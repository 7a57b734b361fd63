"""Figures and verdicts from recorded drills: tables of cases, no servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config.loader import load_topology
from orchestrator.config.model import DrillTargets, Policy
from orchestrator.drill import measure
from orchestrator.drill.model import Attempt, Canary, Leg
from orchestrator.lab import topology as lab_topology
from orchestrator.lab.state import LabState
from tests.drill.recorded import at, drill, leg, mail, protect

EXAMPLE = Path(__file__).parents[2] / "inventories" / "example-zimbra" / "topology.yaml"


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


def test_a_zero_rto_is_refused_but_a_zero_rpo_is_the_usual_target() -> None:
    with pytest.raises(measure.BadTargets, match=r"an RTO of 0 cannot be met — .* rto=5m"):
        measure.parse_targets("rto=0s,rpo=0")
    assert measure.parse_targets("rpo=0") == {"rpo": 0.0}


TOPOLOGY = "topology: policy.drill_targets"
DEFAULT = "default"


@pytest.mark.parametrize(
    ("given", "policy", "rto", "rpo"),
    [
        # nothing named anywhere: the defaults, said to be defaults
        ({}, None, (300.0, DEFAULT), (0.0, DEFAULT)),
        ({}, DrillTargets(), (300.0, DEFAULT), (0.0, DEFAULT)),
        # the topology's policy
        ({}, DrillTargets(rto=120, rpo=5), (120.0, TOPOLOGY), (5.0, TOPOLOGY)),
        # an RPO of 0 written in the topology is policy, not the default it equals
        ({}, DrillTargets(rpo=0), (300.0, DEFAULT), (0.0, TOPOLOGY)),
        # --targets overrides the topology figure by figure
        ({"rto": 60.0}, DrillTargets(rto=120, rpo=5), (60.0, "--targets"), (5.0, TOPOLOGY)),
        ({"rpo": 1.0}, DrillTargets(rto=120), (120.0, TOPOLOGY), (1.0, "--targets")),
        (
            {"rto": 60.0, "rpo": 0.0},
            DrillTargets(rto=120, rpo=5),
            (60.0, "--targets"),
            (0.0, "--targets"),
        ),
        ({"rto": 60.0}, None, (60.0, "--targets"), (0.0, DEFAULT)),
    ],
)
def test_targets_come_from_the_command_line_then_the_topology_then_the_default(
    given: dict[str, float],
    policy: DrillTargets | None,
    rto: tuple[float, str],
    rpo: tuple[float, str],
) -> None:
    got = measure.targets(given, policy)
    assert (got.rto_s, got.rpo_s) == (rto[0], rpo[0])
    assert got.source["rto"].startswith(rto[1]), got.source
    assert got.source["rpo"].startswith(rpo[1]), got.source


def test_the_example_and_the_lab_name_their_drill_targets(tmp_path: Path) -> None:
    example = load_topology(EXAMPLE).policy.drill_targets
    lab = Policy.model_validate(lab_topology.build(LabState(tmp_path))["policy"]).drill_targets
    for policy, rto in ((example, 900.0), (lab, 120.0)):
        got = measure.targets({}, policy)
        assert (got.rto_s, got.rpo_s) == (rto, 0.0)
        assert got.source == {"rto": TOPOLOGY, "rpo": TOPOLOGY}


def _attempt(t: float, site: str | None, ok: bool) -> Attempt:
    return Attempt(at(t), site, "", ok)


@pytest.mark.parametrize(
    ("attempts", "seconds", "why"),
    [
        # accepted at dc1 until 6, refused, accepted at dc2 from 15.5
        (
            [
                _attempt(5, "dc1", True),
                _attempt(6, "dc1", True),
                _attempt(9, "dc1", False),
                _attempt(15.5, "dc2", True),
                _attempt(16, "dc2", True),
            ],
            9.5,
            "",
        ),
        # DNS flapped to dc2 early: the RTO still runs from the LAST write at dc1
        (
            [_attempt(3, "dc2", True), _attempt(6, "dc1", True), _attempt(15.5, "dc2", True)],
            9.5,
            "",
        ),
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
def test_rpo(found: list[bool | None], seconds: float | None, lower_bound: bool, lost: int) -> None:
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


PASSING = drill(
    leg("there", "dc1", "dc2", 0), leg("back", "dc2", "dc1", 60), failback=True, active="dc1"
)
# As run_drill records a failback since the last reprotect is part of the report.
PROTECTED = drill(
    leg("there", "dc1", "dc2", 0),
    leg("back", "dc2", "dc1", 60),
    protect("dc1", "dc2", 90),
    failback=True,
    active="dc1",
)


@pytest.mark.parametrize(
    ("record", "passed", "failure"),
    [
        (PASSING, True, None),
        (PROTECTED, True, None),
        # home again, but the writes made there since never reached dc2: not protected
        (
            drill(
                leg("there", "dc1", "dc2", 0),
                leg("back", "dc2", "dc1", 60),
                protect("dc1", "dc2", 90, replicated=False),
                failback=True,
                active="dc1",
            ),
            False,
            "dc1→dc2: S3 objects replicated back once reprotected on dc2 failed: 1 object",
        ),
        (
            drill(
                leg("there", "dc1", "dc2", 0),
                leg("back", "dc2", "dc1", 60),
                protect("dc1", "dc2", 90, status="failed"),
                failback=True,
                active="dc1",
                stopped="reprotect dc1→dc2 failed",
            ),
            False,
            "reprotect dc1→dc2 failed at step reprotect/object-store/mail-blobs",
        ),
        (drill(leg("there", "dc1", "dc2", 0)), True, None),
        (
            drill(leg("there", "dc1", "dc2", 0, lost=frozenset({4, 5}))),
            False,
            "dc1→dc2: 3 of 6 writes lost, RPO",
        ),
        # the same loss within a looser target passes the RPO (span 0.4 s ≤ 10 s)
        (drill(leg("there", "dc1", "dc2", 0, lost=frozenset({5})), rpo=10), True, None),
        (
            drill(leg("there", "dc1", "dc2", 0), rto=5),
            False,
            "dc1→dc2: RTO 9.5 s over the 5 s target",
        ),
        (
            drill(
                leg(
                    "there", "dc1", "dc2", 0, status="failed", failed_step="start-services/dc2/mta"
                ),
                stopped="switchover failed",
            ),
            False,
            "switchover dc1→dc2 failed at step start-services/dc2/mta",
        ),
        (drill(leg("there", "dc1", "dc2", 0), failback=True), False, "1 of 2 legs ran"),
        (
            drill(
                leg("there", "dc1", "dc2", 0),
                leg("back", "dc2", "dc1", 60),
                failback=True,
                active="dc2",
            ),
            False,
            "dc2 is active at the end, not dc1",
        ),
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
    stopped = drill(
        leg("there", "dc1", "dc2", 0),
        Leg("back", "dc2", "dc1"),
        failback=True,
        stopped="dc1 is not in sync after the reprotect",
    )
    result = measure.verdict(stopped)
    assert not result.passed
    assert not any("RTO" in f or "RPO" in f for f in result.failures), result.failures


def test_figures_of_a_passing_failback_drill() -> None:
    there, back = measure.verdict(PASSING).legs
    assert there.rto.seconds == pytest.approx(9.5)
    assert (there.rpo.seconds, there.rpo.lost, there.rpo.checked) == (0.0, 0, 6)
    assert back.operation_seconds == pytest.approx(15.1)


def test_the_last_reprotect_has_no_figures_of_its_own() -> None:
    result = measure.verdict(PROTECTED)
    # An RTO or RPO of a leg that moves nothing would be a figure about nothing.
    assert [f.name for f in result.legs] == ["there", "back"]
    assert result.passed, result.failures
