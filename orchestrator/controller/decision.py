"""The controller's decision: one immutable snapshot in, one action and one sentence out.

Pure on purpose (no ZooKeeper, no clock, no checks): every rule of automatic promotion
lives here and is table-tested by its sentence, which is also the log line. The daemon
gathers a `Snapshot` once per cycle, calls `decide`, logs the sentence and carries out
the action; nothing else decides.

The rules, in the order they are applied:
1. no verified leadership (suspended session, not elected) → stand by;
2. an unfinished operation: a running one under a live holder is waited for; one whose
   holder is gone is resumed from its checkpoints if a controller ran it (automatic, or
   asked for by a person through the controllers); a failed one, or one run in an
   operator's own shell (`--local`), waits for a person;
3. the active site must be seen down by a majority of all vantage points (the witness
   counts; a vantage point that has not reported recently is absent, never "down"), each
   for `consecutive_failures` probes in a row;
4. then: automatic promotion on in the policy, not a failback to the home site, not
   paused, no automatic failover within the block period unless acknowledged, and the
   target ready by the data-readiness gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

UP, DEGRADED, DOWN = "up", "degraded", "down"


class Action(StrEnum):
    STAND_BY = "stand-by"  # not a verified leader: take no decision at all
    OBSERVE = "observe"  # healthy: nothing to do
    WAIT = "wait"  # something may be wrong but not (yet) enough to act
    HOLD = "hold"  # promotion would be warranted, but a rule or a person holds it
    FAILOVER = "failover"
    RESUME = "resume"


@dataclass(frozen=True)
class SiteView:
    """One vantage point's verdict of one site after its latest probe."""

    status: str  # up | degraded | down
    streak: int = 0  # consecutive probes that found the site down (0 unless down)
    reason: str = ""


@dataclass(frozen=True)
class VantageView:
    vantage: str  # the site the controller runs in
    active_site: str  # the site it believed active when it probed
    age: float | None  # seconds since the leader saw this report change; None: not yet
    sites: Mapping[str, SiteView] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sites", MappingProxyType(dict(self.sites)))


@dataclass(frozen=True)
class OperationView:
    id: str
    mode: str
    from_site: str
    to_site: str
    status: str  # running | failed | interrupted (finished ones are not "current")
    automatic: bool
    failed_step: str | None = None
    requested: bool = False  # a person asked the controllers to run it


@dataclass(frozen=True)
class ReadinessView:
    ready: bool
    summary: str  # "mirror lag 2 s" when ready; the reasons when not


@dataclass(frozen=True)
class AutomaticFailover:
    """The last automatic failover the controllers started (its intent record)."""

    id: str
    at: float  # UNIX time it was started
    to_site: str


@dataclass(frozen=True)
class FailedAttempt:
    """This leader's last automatic failover that could not even start (the plan was
    refused, a hook vetoed it, another operation held the lease)."""

    at: float  # UNIX time
    reason: str


@dataclass(frozen=True)
class Snapshot:
    connected: bool  # the ZooKeeper session is connected (not SUSPENDED or LOST)
    leader: bool  # verified leader: our election node exists under our session
    active_site: str
    home_site: str  # the topology's active site: moving back to it is a failback
    datacenters: tuple[str, ...]
    vantage_sites: tuple[str, ...]  # every site that should report (datacenters + witness)
    views: tuple[VantageView, ...] = ()
    paused: str | None = None  # the reason, when paused
    operation: OperationView | None = None  # the current unfinished operation
    lock_holders: tuple[str, ...] = ()  # who holds the operation lease now
    last_automatic: AutomaticFailover | None = None
    acknowledged: str | None = None  # id of the automatic failover a person acknowledged
    readiness: ReadinessView | None = None  # evaluated only once promotion is in view
    failed_attempt: FailedAttempt | None = None


@dataclass(frozen=True)
class Timing:
    """What the decision needs from the policy (kept small so tests read clearly)."""

    probe_interval: float
    consecutive_failures: int
    automatic_promotion: bool
    block_period: float

    @property
    def stale_after(self) -> float:
        # A vantage point publishes once per interval; a probe may take up to two probe
        # timeouts (= intervals) when the site hangs. Three intervals of silence beyond
        # that is not a slow probe any more: the vantage point itself is in trouble.
        return 5 * self.probe_interval

    @property
    def retry_after(self) -> float:
        # An attempt that could not start (a refused plan, a veto) would fail the same
        # way a second later: ask again after ten intervals, not on every cycle.
        return 10 * self.probe_interval


@dataclass(frozen=True)
class Decision:
    action: Action
    sentence: str
    target: str | None = None  # the site to fail over to
    operation: str | None = None  # the operation to resume


@dataclass(frozen=True)
class Tally:
    """How the vantage points see the active site."""

    total: int  # vantage points there should be
    fresh: tuple[VantageView, ...]  # reported recently, about the same active site
    absent: tuple[str, ...]  # silent, stale, or reporting on another active site
    confirming: tuple[VantageView, ...]  # see it down for the full threshold
    seeing_down: tuple[VantageView, ...]  # see it down, for any number of probes

    @property
    def majority(self) -> int:
        return self.total // 2 + 1


def tally(snapshot: Snapshot, timing: Timing) -> Tally:
    active = snapshot.active_site
    expected = set(snapshot.vantage_sites)
    fresh = tuple(
        sorted(
            (
                v
                for v in snapshot.views
                if v.vantage in expected
                and v.active_site == active
                and v.age is not None
                and v.age <= timing.stale_after
                and active in v.sites
            ),
            key=lambda v: v.vantage,
        )
    )
    reporting = {v.vantage for v in fresh}
    absent = tuple(s for s in snapshot.vantage_sites if s not in reporting)
    down = tuple(v for v in fresh if v.sites[active].status == DOWN)
    confirming = tuple(v for v in down if v.sites[active].streak >= timing.consecutive_failures)
    return Tally(len(snapshot.vantage_sites), fresh, absent, confirming, down)


def down_by_quorum(snapshot: Snapshot, timing: Timing) -> bool:
    """Whether promotion is in view, so that the daemon evaluates readiness (expensive)
    only then, and still on the same snapshot it decides on."""
    t = tally(snapshot, timing)
    return len(t.confirming) >= t.majority


def failover_target(snapshot: Snapshot) -> str | None:
    others = [dc for dc in snapshot.datacenters if dc != snapshot.active_site]
    return others[0] if len(others) == 1 else None


def decide(snapshot: Snapshot, timing: Timing, now: float) -> Decision:
    if not snapshot.connected:
        return Decision(
            Action.STAND_BY,
            "ZooKeeper session suspended: taking no decision until reconnected and "
            "re-verified as leader",
        )
    if not snapshot.leader:
        return Decision(Action.STAND_BY, "not the leader: probing and publishing only")
    if snapshot.operation is not None:
        return _unfinished(snapshot, snapshot.operation)
    return _promotion(snapshot, timing, now)


def _unfinished(s: Snapshot, op: OperationView) -> Decision:
    what = f"operation {op.id} ({op.mode} {op.from_site}→{op.to_site})"
    if op.status == "failed":
        step = f" at {op.failed_step}" if op.failed_step else ""
        return Decision(
            Action.HOLD,
            f"{what} failed{step}: waiting for a person (`sitectl resume {op.id}` or "
            f"`sitectl abort {op.id}`)",
        )
    if s.lock_holders:
        return Decision(
            Action.WAIT, f"{what} is {op.status} under {s.lock_holders[0]}: waiting for it"
        )
    if not op.automatic and not op.requested:
        return Decision(
            Action.HOLD,
            f"{what} was run in an operator's shell and left {op.status}: its operator "
            f"resumes or aborts it (`sitectl resume {op.id}`)",
        )
    if s.paused is not None:
        return Decision(
            Action.HOLD,
            f"{what} was left {op.status} by a leader that is gone, but automation is "
            f"paused ({s.paused}): not resuming it",
        )
    return Decision(
        Action.RESUME,
        f"{what} was left {op.status} by a leader that is gone: resuming it from its checkpoints",
        operation=op.id,
    )


def _promotion(s: Snapshot, timing: Timing, now: float) -> Decision:
    t = tally(s, timing)
    active = s.active_site
    if not t.fresh:
        return Decision(
            Action.WAIT,
            f"no vantage point has reported on {active} in the last "
            f"{timing.stale_after:g} s: taking no decision",
        )
    if len(t.confirming) < t.majority:
        return _not_enough(s, t, timing)
    streak = min(v.sites[active].streak for v in t.confirming)
    seen = f"{active} down for {streak} probes from {len(t.confirming)} of {t.total} vantage points"
    target = failover_target(s)
    if target is None:
        return Decision(Action.HOLD, f"{seen}; no single other datacenter to fail over to")
    if not timing.automatic_promotion:
        return Decision(
            Action.HOLD,
            f"{seen}; automatic promotion is off in the policy: a person decides "
            f"(`sitectl failover --to {target}`)",
        )
    if target == s.home_site:
        return Decision(
            Action.HOLD,
            f"{seen}; {target} is the home site and sitectl never fails back "
            f"automatically: a person decides (`sitectl failover --to {target}`)",
        )
    if s.paused is not None:
        return Decision(
            Action.HOLD, f"{seen}; automation is paused ({s.paused}): no automatic failover"
        )
    blocked = _blocked(s, timing, now)
    if blocked:
        return Decision(Action.HOLD, f"{seen}; {blocked}")
    failed = s.failed_attempt
    if failed is not None and now - failed.at < timing.retry_after:
        return Decision(
            Action.HOLD,
            f"{seen}; the last attempt to fail over to {target} could not start "
            f"({failed.reason}): trying again {_duration(timing.retry_after)} after it",
        )
    if s.readiness is None:
        return Decision(Action.WAIT, f"{seen}; readiness of {target} not evaluated yet")
    if not s.readiness.ready:
        return Decision(
            Action.HOLD,
            f"{seen}; {target} not ready ({s.readiness.summary}): no automatic failover "
            f'(`sitectl failover --to {target} --accept-data-loss "REASON"` decides)',
        )
    acked = ""
    if s.last_automatic is not None and s.acknowledged == s.last_automatic.id:
        acked = f"the last automatic failover ({s.last_automatic.id}) was acknowledged; "
    return Decision(
        Action.FAILOVER,
        f"{seen}; {acked}{target} ready ({s.readiness.summary}); starting automatic "
        f"failover to {target}",
        target=target,
    )


def _not_enough(s: Snapshot, t: Tally, timing: Timing) -> Decision:
    active = s.active_site
    absent = f" ({', '.join(t.absent)} absent)" if t.absent else ""
    if not t.seeing_down:
        up = sum(1 for v in t.fresh if v.sites[active].status == UP)
        if up == len(t.fresh):
            return Decision(
                Action.OBSERVE,
                f"{active} up from {len(t.fresh)} of {t.total} vantage points{absent}; "
                "nothing to do",
            )
        return Decision(
            Action.OBSERVE,
            f"{active} degraded from {len(t.fresh) - up} of {t.total} vantage points"
            f"{absent}; not down: nothing to do",
        )
    views = ", ".join(f"{v.vantage} {_probes(v.sites[active].streak)}" for v in t.seeing_down)
    return Decision(
        Action.WAIT,
        f"{active} down from {len(t.seeing_down)} of {t.total} vantage points ({views})"
        f"{absent}; promotion needs {timing.consecutive_failures} consecutive probes from "
        f"{t.majority}: waiting",
    )


def _blocked(s: Snapshot, timing: Timing, now: float) -> str:
    last = s.last_automatic
    if last is None:
        return ""
    elapsed = now - last.at
    if elapsed >= timing.block_period or s.acknowledged == last.id:
        return ""
    return (
        f"an automatic failover to {last.to_site} ({last.id}) started {_duration(elapsed)} "
        f"ago, within the {_duration(timing.block_period)} block period: `sitectl ack` "
        "allows another"
    )


def _probes(n: int) -> str:
    return f"{n} probe" if n == 1 else f"{n} probes"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
