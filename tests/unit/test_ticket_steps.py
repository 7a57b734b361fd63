"""The ticket's steps on a fake ticket and a fake clock: fence/wait passes at once only
when the old site's stop steps are done, otherwise waits out last renewal + ttl + drift
saying how long is left; --no-fence-wait skips it with a warning; a grant is refused
while another site holds a live ticket and no fence/wait passed."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from orchestrator.audit import AuditLog
from orchestrator.config import Topology, load_topology
from orchestrator.coordination.ticket import Ticket, granted
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.records import StepRecord, StepStatus
from orchestrator.engine.steps.ticket import (
    FenceWaitHandler,
    TicketGrantHandler,
    TicketReleaseHandler,
)
from orchestrator.errors import Failed, LeaseLost
from orchestrator.plan import Plan, assumed_state, build_plan
from tests.unit.engine_fakes import FakeFence, operation_record

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra" / "topology.yaml"
T0 = 1_800_000_000.0  # dc1's last renewal


@dataclass
class FakeTickets:
    ticket: Ticket | None

    def read(self) -> Ticket | None:
        return self.ticket

    def grant(self, site: str, now: float, ttl: float) -> Ticket:
        self.ticket = granted(site, 8, now, ttl)
        return self.ticket

    def release(self, site: str, now: float) -> Ticket | None:
        if self.ticket is None or self.ticket.holder != site:
            return None
        self.ticket = self.ticket.released(now)
        return self.ticket

    def revoke(self, site: str, now: float) -> Ticket | None:
        if self.ticket is None or self.ticket.holder != site or self.ticket.revoked_at:
            return None
        self.ticket = self.ticket.revoked(now)
        return self.ticket


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(EXAMPLE)


def _failover(topo: Topology) -> Plan:
    return build_plan(topo, assumed_state(topo, frozenset({"dc1"})), "failover", "dc2")


def _ctx(
    topo: Topology,
    plan: Plan,
    tmp_path: Path,
    logs: list[str],
    status: StepStatus,
    fence: FakeFence | None = None,
    **op: str,
) -> StepContext:
    stops = plan.step("fence/wait/dc1").params["stop_steps"]
    records = {s: StepRecord(step_id=s, status=status) for s in stops}
    return StepContext(
        topo,
        plan,
        replace(operation_record(plan), **op),
        fence or FakeFence(),
        tmp_path,
        logs.append,
        records=lambda: records,
        audit=AuditLog(tmp_path / "audit.jsonl"),
    )


def test_the_wait_passes_at_once_when_the_old_sites_stop_steps_are_done(topo, tmp_path) -> None:
    plan, logs, clock = _failover(topo), [], Clock(T0 + 1)
    tickets = FakeTickets(granted("dc1", 7, T0, 14.0))
    wait = FenceWaitHandler(tickets, clock, clock.sleep)
    wait.apply(plan.step("fence/wait/dc1"), _ctx(topo, plan, tmp_path, logs, StepStatus.DONE))
    assert clock.slept == 0
    assert tickets.ticket.revoked_at == T0 + 1  # dc1 renews no more, even so
    assert "revoked dc1's site ticket: dc1 can no longer renew it" in logs
    assert any("dc1's stop steps succeeded" in line for line in logs)


def test_skipped_stop_steps_wait_until_renewal_plus_ttl_plus_drift(topo, tmp_path) -> None:
    plan, logs, clock = _failover(topo), [], Clock(T0 + 1)
    tickets = FakeTickets(granted("dc1", 7, T0, 14.0))
    wait = FenceWaitHandler(tickets, clock, clock.sleep)
    ctx = _ctx(topo, plan, tmp_path, logs, StepStatus.SKIPPED)
    wait.apply(plan.step("fence/wait/dc1"), ctx)
    assert clock.now == T0 + 14 + 2  # not a moment sooner
    assert (
        "fence/wait dc1: dc1's stop steps did not succeed: waiting until dc1's ticket has "
        "expired (last renewal 08:00:00.0Z + ttl 14 s + clock drift 2 s = 08:00:16.0Z), "
        "15.0 s from now"
    ) in logs
    assert "fence/wait dc1: 15.0 s left, passes at 08:00:16.0Z" in logs
    assert logs[-1] == "fence/wait dc1: dc1's site ticket has expired, the wait is over"
    assert 5 <= sum("s left, passes at" in line for line in logs) <= 9  # every 2 s
    (audited,) = [
        e for e in AuditLog(tmp_path / "audit.jsonl").read() if e["event"] == "fence.wait"
    ]
    assert (audited["renewed_at"], audited["ttl"], audited["clock_drift"]) == (T0, 14.0, 2.0)
    assert audited["passes_at"] == T0 + 16 and audited["step"] == "fence/wait/dc1"


def test_the_wait_stops_at_once_when_the_lease_is_lost(topo, tmp_path) -> None:
    plan, logs, clock = _failover(topo), [], Clock(T0 + 1)
    wait = FenceWaitHandler(FakeTickets(granted("dc1", 7, T0, 14.0)), clock, clock.sleep)
    fence = FakeFence(lost_after_ensures=3)
    ctx = _ctx(topo, plan, tmp_path, logs, StepStatus.SKIPPED, fence)
    with pytest.raises(LeaseLost):
        wait.apply(plan.step("fence/wait/dc1"), ctx)
    assert clock.now < T0 + 2


def test_no_fence_wait_skips_the_wait_with_a_warning_and_an_audit_line(topo, tmp_path) -> None:
    plan, logs, clock = _failover(topo), [], Clock(T0 + 1)
    wait = FenceWaitHandler(FakeTickets(granted("dc1", 7, T0, 14.0)), clock, clock.sleep)
    reason = "dc1 is powered off, confirmed by the DC operator"
    ctx = _ctx(topo, plan, tmp_path, logs, StepStatus.SKIPPED, no_fence_wait=reason)
    wait.apply(plan.step("fence/wait/dc1"), ctx)
    assert clock.slept == 0
    assert (
        f"WARNING: not waiting for dc1's site ticket to expire (--no-fence-wait: {reason}): "
        "dc1 may still be serving while dc2 becomes writable"
    ) in logs
    events = AuditLog(tmp_path / "audit.jsonl").read()
    assert [(e["event"], e["no_fence_wait"]) for e in events] == [("fence.skipped", reason)]


def test_a_grant_waits_for_the_fence_wait_unless_the_ticket_is_free_or_expired(
    topo, tmp_path
) -> None:
    plan, logs, clock = _failover(topo), [], Clock(T0 + 1)
    step = plan.step("ticket/grant/dc2")
    tickets = FakeTickets(granted("dc1", 7, T0, 14.0))
    grant = TicketGrantHandler(tickets, clock, clock.sleep)
    ctx = _ctx(topo, plan, tmp_path, logs, StepStatus.SKIPPED)  # no fence/wait record
    with pytest.raises(Failed, match=r"dc1 still holds it .* and no fence/wait of this operation"):
        grant.apply(step, ctx)
    waited = {"fence/wait/dc1": StepRecord("fence/wait/dc1", StepStatus.DONE)}
    grant.apply(step, replace(ctx, records=lambda: waited))
    assert tickets.ticket.holder == "dc2" and grant.check(step, ctx)
    assert "granted the site ticket to dc2 at epoch 8" in logs
    # An expired ticket (renewal + ttl + drift passed) needs no wait either.
    tickets.ticket, clock.now = granted("dc1", 7, T0, 14.0), T0 + 16
    grant.apply(step, ctx)
    assert tickets.ticket.holder == "dc2"


def test_a_switchover_releases_the_old_sites_ticket_once(topo, tmp_path) -> None:
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    logs: list[str] = []
    tickets = FakeTickets(granted("dc1", 7, T0, 14.0))
    release = TicketReleaseHandler(tickets, Clock(T0 + 1))
    step = plan.step("ticket/release/dc1")
    ctx = StepContext(topo, plan, operation_record(plan), FakeFence(), tmp_path, logs.append)
    assert not release.check(step, ctx)
    release.apply(step, ctx)
    release.verify(step, ctx)
    assert tickets.ticket.holder is None and release.check(step, ctx)
    assert logs == ["released dc1's site ticket: nothing at dc1 may serve without a grant"]
    grant = TicketGrantHandler(tickets, Clock(T0 + 2))
    grant.apply(plan.step("ticket/grant/dc2"), ctx)  # a released ticket: no wait needed
    assert tickets.ticket.holder == "dc2"


def test_a_resumed_wait_waits_only_what_is_left_and_revokes_nothing_again(topo, tmp_path) -> None:
    plan, logs, clock = _failover(topo), [], Clock(T0 + 12)
    tickets = FakeTickets(granted("dc1", 7, T0, 14.0).revoked(T0 + 3))  # by the first run
    wait = FenceWaitHandler(tickets, clock, clock.sleep)
    wait.apply(plan.step("fence/wait/dc1"), _ctx(topo, plan, tmp_path, logs, StepStatus.SKIPPED))
    assert clock.slept == pytest.approx(4.0)
    assert tickets.ticket.revoked_at == T0 + 3
    assert not any(line.startswith("revoked") for line in logs)
