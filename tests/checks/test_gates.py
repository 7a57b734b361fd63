"""blocking_problems and readiness: pure functions of a sweep, tested as tables."""

from __future__ import annotations

import pytest

from orchestrator.checks import CheckResult, Status, Sweep, blocking_problems, readiness
from orchestrator.checks.readiness import Estimate, verdict
from tests.checks.topologies import topology

OK, DEG, DOWN = Status.OK, Status.DEGRADED, Status.DOWN


def result(
    system: str, site: str | None, target: str, status: Status, reason: str = "", **figures: float
) -> CheckResult:
    return CheckResult(system, site, target, status, reason, figures)


@pytest.mark.parametrize(
    ("r", "mode", "blocks"),
    [
        (result("ldap", "dc2", "ldap://127.0.2.11:389", DOWN, "hung"), "failover", True),
        (result("ldap", "dc2", "ldap://127.0.2.11:389", DEG, "behind"), "failover", False),
        (result("ldap", "dc1", "ldap://127.0.1.11:389", DOWN, "refused"), "failover", False),
        (result("ldap", "dc1", "ldap://127.0.1.11:389", DOWN, "refused"), "switchover", True),
        (result("zookeeper", None, "quorum", DOWN, "no quorum"), "failover", True),
        (result("zookeeper", "witness", "127.0.3.1:2181", DOWN, "refused"), "failover", False),
        (
            result("dns", "witness", "update servers of example.test.", DOWN, "BADSIG"),
            "failover",
            True,
        ),
        (
            result("dns", "dc1", "update servers of lab.internal.", DOWN, "timeout"),
            "failover",
            False,
        ),
        (
            result("dns", "dc1", "update servers of lab.internal.", DOWN, "timeout"),
            "switchover",
            True,
        ),
        (
            result("dns", "witness", "zone example.test. at 127.0.3.1:53", DOWN, "t"),
            "failover",
            False,
        ),
        (result("application", "dc2", "mta smtp://127.0.2.1:2525", OK), "switchover", False),
    ],
)
def test_what_blocks(r: CheckResult, mode: str, blocks: bool) -> None:
    problems = blocking_problems(Sweep((r,)), r.system, from_site="dc1", to_site="dc2", mode=mode)
    assert bool(problems) is blocks
    if blocks:
        assert r.target in problems[0] and (r.reason in problems[0])


def test_only_the_asked_system_is_judged() -> None:
    sweep = Sweep((result("ldap", "dc2", "ldap://x", DOWN, "hung"),))
    assert blocking_problems(sweep, "dns", from_site="dc1", to_site="dc2", mode="failover") == []


def test_a_sentence_says_what_why_and_where() -> None:
    sweep = Sweep(
        (
            result(
                "ldap",
                "dc2",
                "ldap://127.0.2.11:389",
                DOWN,
                "accepted the connection but did not answer within 2 s (hung?)",
            ),
        )
    )
    assert blocking_problems(sweep, "ldap", from_site="dc1", to_site="dc2", mode="failover") == [
        "ldap ldap://127.0.2.11:389 in dc2 is down (accepted the connection but did not "
        "answer within 2 s (hung?)): the new site dc2 needs it."
    ]


def test_unknown_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="switchover or failover"):
        blocking_problems(Sweep(()), "ldap", from_site="dc1", to_site="dc2", mode="drill")


# --- readiness --------------------------------------------------------------------

NOW = 10_000.0
MASTERS = {
    1: ("dc1", "ldap://127.0.1.11:389"),
    2: ("dc1", "ldap://127.0.1.12:389"),
    3: ("dc2", "ldap://127.0.2.11:389"),
    4: ("dc2", "ldap://127.0.2.12:389"),
}


def master(sid: int, status: Status = OK, **csn: float) -> CheckResult:
    site, uri = MASTERS[sid]
    return result("ldap", site, uri, status, "", **{f"csn_sid_{k[1:]}": v for k, v in csn.items()})


def healthy_store(lag: float = 0.5) -> list[CheckResult]:
    return [
        result(
            "object-store",
            "dc1",
            "bucket mail-blobs@dc1",
            OK,
            replication_lag_seconds=lag,
            pending=0,
        ),
        result("object-store", "dc2", "bucket mail-blobs@dc2", OK),
    ]


def mirror_result(lag: float, site: str = "dc2", state: float = 0.0) -> CheckResult:
    return result("mirrors", site, "mirror mailstore", OK, lag_seconds=lag, state=state)


def judge(*results: CheckResult, to: str = "dc2"):
    return readiness(topology(), to, Sweep(tuple(results)), clock=lambda: NOW)


def test_ready_when_everything_is_fresh() -> None:
    verdict_ = judge(
        mirror_result(3.0), master(1, s1=NOW - 1), master(3, s1=NOW - 1), *healthy_store()
    )
    assert verdict_.ready, verdict_.reasons
    assert verdict_.loss == {"volume": 3.0, "ldap": 0.0, "object_store": 0.5}
    assert verdict_.describe().startswith("ready to move to dc2: estimated loss")


def test_a_lagging_mirror_refuses_naming_it_and_by_how_much() -> None:
    verdict_ = judge(mirror_result(412.0), master(1, s1=NOW), master(3, s1=NOW), *healthy_store())
    assert not verdict_.ready
    assert verdict_.reasons == (
        "volume mirror mailstore lags 412 s, over the 300 s limit by 112 s",
    )
    assert "not ready to move to dc2" in verdict_.describe()


def test_ldap_lag_is_the_writer_minus_the_best_target_master() -> None:
    verdict_ = judge(
        mirror_result(1.0),
        *healthy_store(),
        master(1, s1=NOW - 10),
        master(2),
        master(3, s1=NOW - 100),
        master(4, s1=NOW - 80),
    )
    assert verdict_.loss["ldap"] == 70.0
    assert verdict_.reasons == (
        "LDAP sid 1 (ldap://127.0.1.11:389) lags 70 s, over the 60 s limit by 10 s",
    )


def test_each_replicator_has_its_own_figure_behind_the_worst() -> None:
    verdict_ = judge(
        mirror_result(2.0),
        *healthy_store(0.5),
        master(1, s1=NOW - 10),
        master(2, s2=NOW - 30),
        master(3, s1=NOW - 15, s2=NOW - 90),
        master(4, s1=NOW - 12),
    )
    assert verdict_.replicators == {
        "volume mirror mailstore": 2.0,
        "LDAP sid 1 (ldap://127.0.1.11:389)": 2.0,  # dc2's best master holds NOW - 12
        "LDAP sid 2 (ldap://127.0.1.12:389)": 60.0,
        "bucket mail-blobs": 0.5,
    }
    assert verdict_.loss == {"volume": 2.0, "ldap": 60.0, "object_store": 0.5}
    assert verdict_.to_json()["replicators"] == dict(verdict_.replicators)


def test_with_the_old_site_gone_ldap_is_bounded_by_what_the_target_holds() -> None:
    verdict_ = judge(
        mirror_result(1.0),
        *healthy_store(),
        master(1, DOWN),
        master(2, DOWN),
        master(3, s1=NOW - 30),
        master(4),
    )
    assert verdict_.ready and verdict_.loss["ldap"] == 30.0
    assert any("upper bound" in note for note in verdict_.notes)


def test_no_answering_target_master_is_unknown_and_refuses() -> None:
    verdict_ = judge(
        mirror_result(1.0), *healthy_store(), master(1, s1=NOW), master(3, DOWN), master(4, DOWN)
    )
    assert not verdict_.ready and verdict_.loss["ldap"] is None
    assert "LDAP loss is unknown: no LDAP master in dc2 answered" in verdict_.reasons


def test_object_store_falls_back_to_the_canary_age_at_the_target() -> None:
    verdict_ = judge(
        mirror_result(1.0),
        master(3, s1=NOW),
        result("object-store", "dc1", "bucket mail-blobs@dc1", DOWN, "refused"),
        result("object-store", "dc2", "bucket mail-blobs@dc2", OK, canary_age_seconds=1000.0),
    )
    assert not verdict_.ready and verdict_.loss["object_store"] == 1000.0
    assert "bucket mail-blobs lags 1000 s, over the 900 s limit by 100 s" in verdict_.reasons[0]


def test_object_store_without_any_evidence_is_unknown() -> None:
    verdict_ = judge(
        mirror_result(1.0),
        master(3, s1=NOW),
        result("object-store", "dc1", "bucket mail-blobs@dc1", DOWN, "refused"),
        result("object-store", "dc2", "bucket mail-blobs@dc2", OK),
    )
    assert verdict_.loss["object_store"] is None
    assert "run the canary" in verdict_.reasons[0]


def test_moving_back_to_the_writable_side_loses_nothing_of_the_volume() -> None:
    verdict_ = judge(
        mirror_result(500.0, site="dc2"),
        master(1, s1=NOW),
        master(3, s1=NOW),
        *healthy_store(),
        to="dc1",
    )
    assert verdict_.loss["volume"] == 0.0


def test_a_broken_off_mirror_towards_the_target_loses_nothing_more() -> None:
    verdict_ = judge(
        mirror_result(500.0, state=2.0), master(1, s1=NOW), master(3, s1=NOW), *healthy_store()
    )
    assert verdict_.loss["volume"] == 0.0


def test_an_unreadable_mirror_is_unknown() -> None:
    verdict_ = judge(
        result("mirrors", "dc2", "mirror mailstore", DOWN, "state file unreadable"),
        master(1, s1=NOW),
        master(3, s1=NOW),
        *healthy_store(),
    )
    assert verdict_.reasons[0].startswith(
        "volume mirrors loss is unknown: mirror mailstore's "
        "state could not be read (state file unreadable)"
    )


def test_not_a_datacenter() -> None:
    verdict_ = readiness(topology(), "witness", Sweep(()))
    assert not verdict_.ready and "not a datacenter" in verdict_.reasons[0]


@pytest.mark.parametrize(
    ("estimates", "ready"),
    [
        ({"volume": Estimate(10.0)}, True),
        ({"volume": Estimate(300.0)}, True),  # at the limit is within it
        ({"volume": Estimate(300.5)}, False),
        ({"volume": Estimate(None, why="?")}, False),
        ({}, True),
    ],
)
def test_verdict(estimates: dict, ready: bool) -> None:
    assert verdict("dc2", estimates, {"volume": 300.0}).ready is ready
