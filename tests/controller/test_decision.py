"""The decision table: each case is a snapshot and the one sentence the leader must log.

The sentence is the oracle: it is what an operator reads in the log, so a case that
decides right but explains wrong fails too.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.controller.decision import (
    Action,
    AutomaticFailover,
    FailedAttempt,
    OperationView,
    ReadinessView,
    SiteView,
    Snapshot,
    Timing,
    VantageView,
    decide,
    down_by_quorum,
)

NOW = 1_800_000_000.0
TIMING = Timing(
    probe_interval=1.0, consecutive_failures=3, automatic_promotion=True, block_period=3600.0
)
READY = ReadinessView(True, "mirror lag 2 s")


def view(
    vantage: str,
    dc1: str = "up",
    streak: int = 0,
    *,
    age: float | None = 0.5,
    active: str = "dc1",
    dc2: str = "up",
    dc2_streak: int = 0,
) -> VantageView:
    return VantageView(
        vantage, active, age, {"dc1": SiteView(dc1, streak), "dc2": SiteView(dc2, dc2_streak)}
    )


def snap(*views: VantageView, **changes: object) -> Snapshot:
    base = Snapshot(
        connected=True,
        leader=True,
        active_site="dc1",
        home_site="dc1",
        datacenters=("dc1", "dc2"),
        vantage_sites=("dc1", "dc2", "witness"),
        views=views,
        readiness=READY,
    )
    return replace(base, **changes)


ALL_UP = (view("dc1"), view("dc2"), view("witness"))
DC1_GONE = (view("dc2", "down", 3), view("witness", "down", 3))  # dc1's controller died with it
RUNNING_AUTO = OperationView("20261122T141000Z-ab12", "failover", "dc1", "dc2", "running", True)

CASES: list[tuple[str, Snapshot, Timing | None, Action, str]] = [
    (
        "healthy",
        snap(*ALL_UP),
        None,
        Action.OBSERVE,
        "dc1 up from 3 of 3 vantage points; nothing to do",
    ),
    (
        "healthy, witness silent",
        snap(view("dc1"), view("dc2")),
        None,
        Action.OBSERVE,
        "dc1 up from 2 of 3 vantage points (witness absent); nothing to do",
    ),
    (
        "degraded is not down",
        snap(view("dc1", "degraded"), view("dc2"), view("witness")),
        None,
        Action.OBSERVE,
        "dc1 degraded from 1 of 3 vantage points; not down: nothing to do",
    ),
    (
        "site lost: promote",
        snap(*DC1_GONE),
        None,
        Action.FAILOVER,
        "dc1 down for 3 probes from 2 of 3 vantage points; dc2 ready (mirror lag 2 s); "
        "starting automatic failover to dc2",
    ),
    (
        "all three see it down",
        snap(view("dc1", "down", 4), view("dc2", "down", 5), view("witness", "down", 3)),
        None,
        Action.FAILOVER,
        "dc1 down for 3 probes from 3 of 3 vantage points; dc2 ready (mirror lag 2 s); "
        "starting automatic failover to dc2",
    ),
    (
        "flap shorter than the threshold",
        snap(view("dc1"), view("dc2", "down", 2), view("witness", "down", 2)),
        None,
        Action.WAIT,
        "dc1 down from 2 of 3 vantage points (dc2 2 probes, witness 2 probes); promotion needs "
        "3 consecutive probes from 2: waiting",
    ),
    (
        "a single probe down",
        snap(view("dc1"), view("dc2", "down", 1), view("witness")),
        None,
        Action.WAIT,
        "dc1 down from 1 of 3 vantage points (dc2 1 probe); promotion needs 3 consecutive "
        "probes from 2: waiting",
    ),
    (
        "minority view: only dc2 sees dc1 down",
        snap(view("dc1"), view("dc2", "down", 9), view("witness")),
        None,
        Action.WAIT,
        "dc1 down from 1 of 3 vantage points (dc2 9 probes); promotion needs 3 consecutive "
        "probes from 2: waiting",
    ),
    (
        "witness-only view",
        snap(view("witness", "down", 5)),
        None,
        Action.WAIT,
        "dc1 down from 1 of 3 vantage points (witness 5 probes) (dc1, dc2 absent); promotion "
        "needs 3 consecutive probes from 2: waiting",
    ),
    (
        "a stale 'down' is absent, not down",
        snap(view("dc2", "down", 7), view("witness", "down", 7, age=6.0)),
        None,
        Action.WAIT,
        "dc1 down from 1 of 3 vantage points (dc2 7 probes) (dc1, witness absent); promotion "
        "needs 3 consecutive probes from 2: waiting",
    ),
    (
        "a report not yet seen to change is absent",
        snap(view("dc2", "down", 7), view("witness", "down", 7, age=None)),
        None,
        Action.WAIT,
        "dc1 down from 1 of 3 vantage points (dc2 7 probes) (dc1, witness absent); promotion "
        "needs 3 consecutive probes from 2: waiting",
    ),
    (
        "a report about another active site is absent",
        snap(view("dc2", "down", 7), view("witness", "down", 7, active="dc2")),
        None,
        Action.WAIT,
        "dc1 down from 1 of 3 vantage points (dc2 7 probes) (dc1, witness absent); promotion "
        "needs 3 consecutive probes from 2: waiting",
    ),
    (
        "an unknown vantage point does not count",
        snap(view("dc2", "down", 7), view("dc3", "down", 7)),
        None,
        Action.WAIT,
        "dc1 down from 1 of 3 vantage points (dc2 7 probes) (dc1, witness absent); promotion "
        "needs 3 consecutive probes from 2: waiting",
    ),
    (
        "nobody reports",
        snap(),
        None,
        Action.WAIT,
        "no vantage point has reported on dc1 in the last 5 s: taking no decision",
    ),
    (
        "paused",
        snap(*DC1_GONE, paused="maintenance window CHG-42"),
        None,
        Action.HOLD,
        "dc1 down for 3 probes from 2 of 3 vantage points; automation is paused (maintenance "
        "window CHG-42): no automatic failover",
    ),
    (
        "automatic promotion off",
        snap(*DC1_GONE),
        replace(TIMING, automatic_promotion=False),
        Action.HOLD,
        "dc1 down for 3 probes from 2 of 3 vantage points; automatic promotion is off in the "
        "policy: a person decides (`sitectl failover --to dc2`)",
    ),
    (
        "target not ready",
        snap(
            *DC1_GONE,
            readiness=ReadinessView(
                False, "volume mirror mailstore lags 400 s, over the 300 s limit by 100 s"
            ),
        ),
        None,
        Action.HOLD,
        "dc1 down for 3 probes from 2 of 3 vantage points; dc2 not ready (volume mirror "
        "mailstore lags 400 s, over the 300 s limit by 100 s): no automatic failover "
        '(`sitectl failover --to dc2 --accept-data-loss "REASON"` decides)',
    ),
    (
        "readiness not evaluated",
        snap(*DC1_GONE, readiness=None),
        None,
        Action.WAIT,
        "dc1 down for 3 probes from 2 of 3 vantage points; readiness of dc2 not evaluated yet",
    ),
    (
        "blocked: an automatic failover 10 min ago",
        snap(*DC1_GONE, last_automatic=AutomaticFailover("auto-1", NOW - 600, "dc2")),
        None,
        Action.HOLD,
        "dc1 down for 3 probes from 2 of 3 vantage points; an automatic failover to dc2 "
        "(auto-1) started 10 min ago, within the 60 min block period: `sitectl ack` allows "
        "another",
    ),
    (
        "acknowledged: promote",
        snap(
            *DC1_GONE,
            last_automatic=AutomaticFailover("auto-1", NOW - 600, "dc2"),
            acknowledged="auto-1",
        ),
        None,
        Action.FAILOVER,
        "dc1 down for 3 probes from 2 of 3 vantage points; the last automatic failover "
        "(auto-1) was acknowledged; dc2 ready (mirror lag 2 s); starting automatic failover "
        "to dc2",
    ),
    (
        "an older acknowledgement does not cover a newer failover",
        snap(
            *DC1_GONE,
            last_automatic=AutomaticFailover("auto-2", NOW - 30, "dc2"),
            acknowledged="auto-1",
        ),
        None,
        Action.HOLD,
        "dc1 down for 3 probes from 2 of 3 vantage points; an automatic failover to dc2 "
        "(auto-2) started 30 s ago, within the 60 min block period: `sitectl ack` allows "
        "another",
    ),
    (
        "the block period is over",
        snap(*DC1_GONE, last_automatic=AutomaticFailover("auto-1", NOW - 3601, "dc2")),
        None,
        Action.FAILOVER,
        "dc1 down for 3 probes from 2 of 3 vantage points; dc2 ready (mirror lag 2 s); "
        "starting automatic failover to dc2",
    ),
    (
        "an attempt that could not start is not retried on every cycle",
        snap(*DC1_GONE, failed_attempt=FailedAttempt(NOW - 4, "pre-failover hook refused")),
        None,
        Action.HOLD,
        "dc1 down for 3 probes from 2 of 3 vantage points; the last attempt to fail over to dc2 "
        "could not start (pre-failover hook refused): trying again 10 s after it",
    ),
    (
        "and is retried after ten intervals",
        snap(*DC1_GONE, failed_attempt=FailedAttempt(NOW - 10, "pre-failover hook refused")),
        None,
        Action.FAILOVER,
        "dc1 down for 3 probes from 2 of 3 vantage points; dc2 ready (mirror lag 2 s); "
        "starting automatic failover to dc2",
    ),
    (
        "already failed over: dc2 serves",
        snap(
            view("dc2", active="dc2", dc1="down", streak=40),
            view("witness", active="dc2", dc1="down", streak=40),
            active_site="dc2",
        ),
        None,
        Action.OBSERVE,
        "dc2 up from 2 of 3 vantage points (dc1 absent); nothing to do",
    ),
    (
        "never fail back automatically",
        snap(
            view("dc1", active="dc2", dc2="down", dc2_streak=3),
            view("witness", active="dc2", dc2="down", dc2_streak=4),
            active_site="dc2",
        ),
        None,
        Action.HOLD,
        "dc2 down for 3 probes from 2 of 3 vantage points; dc1 is the home site and sitectl "
        "never fails back automatically: a person decides (`sitectl failover --to dc1`)",
    ),
    (
        "suspended",
        snap(*DC1_GONE, connected=False),
        None,
        Action.STAND_BY,
        "ZooKeeper session suspended: taking no decision until reconnected and re-verified "
        "as leader",
    ),
    (
        "suspended beats everything, even a leader flag",
        snap(*DC1_GONE, connected=False, operation=RUNNING_AUTO),
        None,
        Action.STAND_BY,
        "ZooKeeper session suspended: taking no decision until reconnected and re-verified "
        "as leader",
    ),
    (
        "not the leader",
        snap(*DC1_GONE, leader=False),
        None,
        Action.STAND_BY,
        "not the leader: probing and publishing only",
    ),
    (
        "a dead leader's automatic failover: resume",
        snap(*DC1_GONE, operation=RUNNING_AUTO),
        None,
        Action.RESUME,
        "operation 20261122T141000Z-ab12 (failover dc1→dc2) was left running by a leader that "
        "is gone: resuming it from its checkpoints",
    ),
    (
        "an interrupted one: resume",
        snap(operation=replace(RUNNING_AUTO, status="interrupted")),
        None,
        Action.RESUME,
        "operation 20261122T141000Z-ab12 (failover dc1→dc2) was left interrupted by a leader "
        "that is gone: resuming it from its checkpoints",
    ),
    (
        "its holder's lock has not expired yet: wait",
        snap(*DC1_GONE, operation=RUNNING_AUTO, lock_holders=("root@dc1:4242",)),
        None,
        Action.WAIT,
        "operation 20261122T141000Z-ab12 (failover dc1→dc2) is running under root@dc1:4242: "
        "waiting for it",
    ),
    (
        "an operator's switchover running: wait, do not pile on",
        snap(
            *DC1_GONE,
            lock_holders=("alice@ops1:77",),
            operation=OperationView("op-9", "switchover", "dc1", "dc2", "running", False),
        ),
        None,
        Action.WAIT,
        "operation op-9 (switchover dc1→dc2) is running under alice@ops1:77: waiting for it",
    ),
    (
        "a failed one waits for a person",
        snap(
            *DC1_GONE, operation=replace(RUNNING_AUTO, status="failed", failed_step="dns/external")
        ),
        None,
        Action.HOLD,
        "operation 20261122T141000Z-ab12 (failover dc1→dc2) failed at dns/external: waiting "
        "for a person (`sitectl resume 20261122T141000Z-ab12` or `sitectl abort "
        "20261122T141000Z-ab12`)",
    ),
    (
        "an operation run in an operator's shell and left running is theirs",
        snap(operation=OperationView("op-9", "switchover", "dc1", "dc2", "running", False)),
        None,
        Action.HOLD,
        "operation op-9 (switchover dc1→dc2) was run in an operator's shell and left running: "
        "its operator resumes or aborts it (`sitectl resume op-9`)",
    ),
    (
        "an operation a person asked the controllers for is resumed by the next leader",
        snap(
            operation=OperationView(
                "op-9", "switchover", "dc1", "dc2", "running", False, requested=True
            )
        ),
        None,
        Action.RESUME,
        "operation op-9 (switchover dc1→dc2) was left running by a leader that is gone: "
        "resuming it from its checkpoints",
    ),
    (
        "a requested one left interrupted too",
        snap(
            operation=OperationView(
                "op-9", "reprotect", "dc2", "dc1", "interrupted", False, requested=True
            )
        ),
        None,
        Action.RESUME,
        "operation op-9 (reprotect dc2→dc1) was left interrupted by a leader that is gone: "
        "resuming it from its checkpoints",
    ),
    (
        "paused holds a requested one's resume as well",
        snap(
            operation=OperationView(
                "op-9", "switchover", "dc1", "dc2", "running", False, requested=True
            ),
            paused="change 4711",
        ),
        None,
        Action.HOLD,
        "operation op-9 (switchover dc1→dc2) was left running by a leader that is gone, but "
        "automation is paused (change 4711): not resuming it",
    ),
    (
        "a requested one that failed waits for a person",
        snap(
            operation=OperationView(
                "op-9", "switchover", "dc1", "dc2", "failed", False, "mount", requested=True
            )
        ),
        None,
        Action.HOLD,
        "operation op-9 (switchover dc1→dc2) failed at mount: waiting for a person "
        "(`sitectl resume op-9` or `sitectl abort op-9`)",
    ),
    (
        "paused holds a resume too",
        snap(operation=RUNNING_AUTO, paused="drill"),
        None,
        Action.HOLD,
        "operation 20261122T141000Z-ab12 (failover dc1→dc2) was left running by a leader that "
        "is gone, but automation is paused (drill): not resuming it",
    ),
    (
        "a longer threshold",
        snap(*DC1_GONE),
        replace(TIMING, consecutive_failures=5),
        Action.WAIT,
        "dc1 down from 2 of 3 vantage points (dc2 3 probes, witness 3 probes) (dc1 absent); "
        "promotion needs 5 consecutive probes from 2: waiting",
    ),
    (
        "one confirms, one is still counting",
        snap(view("dc2", "down", 3), view("witness", "down", 2), view("dc1")),
        None,
        Action.WAIT,
        "dc1 down from 2 of 3 vantage points (dc2 3 probes, witness 2 probes); promotion needs "
        "3 consecutive probes from 2: waiting",
    ),
]


@pytest.mark.parametrize(
    ("snapshot", "timing", "action", "sentence"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_decision(snapshot: Snapshot, timing: Timing | None, action: Action, sentence: str) -> None:
    decision = decide(snapshot, timing or TIMING, NOW)
    assert decision.sentence == sentence
    assert decision.action is action


def test_a_failover_names_its_target_and_a_resume_its_operation() -> None:
    assert decide(snap(*DC1_GONE), TIMING, NOW).target == "dc2"
    assert decide(snap(operation=RUNNING_AUTO), TIMING, NOW).operation == RUNNING_AUTO.id


def test_readiness_is_wanted_exactly_when_a_majority_confirms() -> None:
    assert down_by_quorum(snap(*DC1_GONE), TIMING)
    assert not down_by_quorum(snap(view("dc2", "down", 3), view("witness", "down", 2)), TIMING)
    assert not down_by_quorum(snap(*ALL_UP), TIMING)


def test_a_snapshot_cannot_change_under_the_decision() -> None:
    v = view("dc2", "down", 3)
    with pytest.raises(TypeError):
        v.sites["dc1"] = SiteView("up")  # type: ignore[index]
