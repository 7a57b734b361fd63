"""The site ticket's arithmetic, as tables: when it expires, when a failover's fence/wait
passes, and when a person may grant it without --force. Pure: no ZooKeeper."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import load_topology
from orchestrator.coordination.ticket import (
    Ticket,
    clock_text,
    fence_wait,
    granted,
    refuse_grant,
    refuse_start,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra" / "topology.yaml"
T0 = 1_800_000_000.0  # a renewal instant
TTL, DRIFT = 8.0, 2.0


def held(site: str | None = "dc1", **changes: object) -> Ticket:
    ticket = granted(site or "dc1", 7, T0 - 30, TTL)
    ticket = ticket.renewed(T0)
    if site is None:
        ticket = ticket.released(T0)
    return Ticket(**{**ticket.__dict__, **changes})


@pytest.mark.parametrize(
    ("now", "expired"),
    [
        (T0, False),
        (T0 + TTL, False),  # expired for its holder, but not yet past the drift margin
        (T0 + TTL + DRIFT - 0.01, False),
        (T0 + TTL + DRIFT, True),
        (T0 + 60, True),
    ],
)
def test_a_ticket_passes_to_another_site_only_after_renewal_plus_ttl_plus_drift(
    now: float, expired: bool
) -> None:
    ticket = held()
    assert ticket.expires_at == T0 + TTL
    assert ticket.passes_at(DRIFT) == T0 + TTL + DRIFT
    assert ticket.expired(now, DRIFT) is expired


@pytest.mark.parametrize(
    ("ticket", "old_stopped", "now", "until", "says"),
    [
        (None, False, T0, None, "no ticket recorded: nothing of dc1's to wait for"),
        (held("dc2"), False, T0, None, "dc1 does not hold the ticket (dc2 does): no wait"),
        (held(None), False, T0, None, "dc1 does not hold the ticket (nobody does): no wait"),
        (held(), True, T0 + 1, None, "dc1's stop steps succeeded"),
        (
            held(),
            False,
            T0 + 1,
            T0 + TTL + DRIFT,
            "dc1's stop steps did not succeed: waiting until dc1's ticket has expired "
            "(last renewal 08:00:00.0Z + ttl 8 s + clock drift 2 s = 08:00:10.0Z), 9.0 s from now",
        ),
        (held(), False, T0 + TTL + DRIFT, None, "dc1's ticket has expired"),
        # A revoked ticket waits the same: revocation only stops further renewals.
        (held(revoked_at=T0 + 3), False, T0 + 4, T0 + TTL + DRIFT, "6.0 s from now"),
    ],
)
def test_the_fence_wait_passes_at_once_only_when_the_old_site_is_known_stopped(
    ticket: Ticket | None, old_stopped: bool, now: float, until: float | None, says: str
) -> None:
    wait = fence_wait(ticket, "dc1", old_stopped, DRIFT, now)
    assert wait.until == until
    assert says in wait.sentence


@pytest.mark.parametrize(
    ("ticket", "site", "now", "refusal"),
    [
        (None, "dc1", T0, "no ticket is recorded yet"),
        (held(), "dc2", T0 + 60, "dc2 does not hold the ticket (dc1 does)"),
        (held(None), "dc1", T0 + 60, "dc1 does not hold the ticket (nobody does)"),
        (held(), "dc1", T0 + 1, "dc1 holds a live ticket"),
        (held(), "dc1", T0 + TTL + 1, "dc1 holds a live ticket"),  # within the margin
        (held(revoked_at=T0), "dc1", T0 + 60, "was revoked by a failover"),
        (held(), "dc1", T0 + TTL + DRIFT, None),  # the lone survivor, its quorum back
    ],
)
def test_a_grant_by_hand_without_force_only_returns_an_expired_ticket_to_its_holder(
    ticket: Ticket | None, site: str, now: float, refusal: str | None
) -> None:
    said = refuse_grant(ticket, site, now, DRIFT)
    if refusal is None:
        assert said is None
    else:
        assert said is not None and refusal in said and "—" in said


def test_transitions_keep_what_the_wait_depends_on() -> None:
    ticket = held()
    revoked = ticket.revoked(T0 + 3)
    assert revoked.renewed_at == T0 and not revoked.renewable_by("dc1")
    assert revoked.revoked(T0 + 9).revoked_at == T0 + 3  # the first revocation stands
    assert ticket.renewed(T0 - 5).renewed_at == T0  # a late clock never moves it back
    assert ticket.released(T0 + 1).holder is None
    assert Ticket.from_json(revoked.to_json()) == revoked
    assert not held("dc2").renewable_by("dc1")


def test_the_defaults_sit_a_few_seconds_above_the_zookeeper_session() -> None:
    topo = load_topology(EXAMPLE)
    assert topo.zookeeper.session_timeout == 10.0
    assert (topo.ticket_ttl, topo.fence_after, topo.policy.clock_drift) == (14.0, 10.0, 2.0)
    set_ = topo.model_copy(
        update={"policy": topo.policy.model_copy(update={"ticket_ttl": 20.0, "fence_after": 9.0})}
    )
    assert (set_.ticket_ttl, set_.fence_after) == (20.0, 9.0)


@pytest.mark.parametrize(
    ("ticket", "site", "refused"),
    [
        (None, "dc1", None),
        (None, "dc2", "no ticket is recorded and dc1, not dc2, is the active site"),
        (granted("dc1", 3, 100.0, 10.0), "dc1", None),
        (granted("dc1", 3, 100.0, 10.0), "dc2", "dc2 does not hold the site ticket (dc1 does)"),
        (
            granted("dc1", 3, 100.0, 10.0).revoked(104.0),
            "dc1",
            "dc1's ticket was revoked by a failover at " + clock_text(104.0),
        ),
        # Expired but neither revoked nor taken (no controller renews it): still dc1's.
        (granted("dc1", 3, 90.0, 10.0), "dc1", None),
        (
            granted("dc1", 3, 100.0, 10.0).released(101.0),
            "dc1",
            "dc1 does not hold the site ticket (nobody does)",
        ),
    ],
)
def test_the_start_gate(ticket: Ticket | None, site: str, refused: str | None) -> None:
    assert refuse_start(ticket, site, active_site="dc1", now=105.0) == refused


def test_a_grant_names_the_site_that_lost_the_ticket_without_releasing_it() -> None:
    held = granted("dc1", 3, 100.0, 10.0)
    assert granted("dc2", 4, 120.0, 10.0, before=held.revoked(110.0)).lost_by == "dc1"
    assert granted("dc2", 4, 120.0, 10.0, before=held).lost_by == "dc1", "expired or forced"
    assert granted("dc2", 4, 120.0, 10.0, before=held.released(110.0)).lost_by is None
    assert granted("dc2", 4, 120.0, 10.0).lost_by is None
    lost = granted("dc2", 4, 120.0, 10.0, before=held)
    assert lost.renewed(130.0).lost_by == "dc1", "renewals keep it"
    assert granted("dc1", 5, 140.0, 10.0, before=lost.released(135.0)).lost_by is None
