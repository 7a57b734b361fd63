"""Fencing DNS updates with the server's own prerequisite check (issue 8, R4), on BIND.

Each test works on the zone fence.test. and first clears its fence record with a
plain signed delete, so the tests do not depend on one another's order.
"""

from __future__ import annotations

import threading

import pytest

from orchestrator.adapters.dns import RecordChange, fence_name, soa_serials, verify
from orchestrator.adapters.dns.rfc2136 import FenceClaim, Rfc2136Provider
from orchestrator.errors import Failed, LeaseLost
from tests.adapters.bindlab import BindPair
from tests.adapters.conftest import run_together

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]
ZONE = "fence.test."
MAIL = "mail.fence.test."


def _set_fence(provider: Rfc2136Provider, *texts: str) -> None:
    """Put the fence record in a given state, bypassing the CAS (test set-up only)."""
    message = provider._message()
    if texts:
        message.replace(fence_name(ZONE), 0, "TXT", *texts)
    else:
        message.delete(fence_name(ZONE), "TXT")
    provider._send_any("test set-up", lambda: message, fenced=False)


@pytest.fixture
def leader(provider) -> Rfc2136Provider:
    fenced = provider(ZONE)
    _set_fence(fenced)
    return fenced


def _answers(bind: BindPair, value: str) -> bool:
    return verify(ZONE, {MAIL: value}, bind.servers, timeout=10).ok


def test_a_fresh_claim_then_fenced_updates_pass(bind: BindPair, leader) -> None:
    claim = leader.claim_fence(3)
    assert (claim.previous, claim.epoch, claim.already_held) == (None, 3, False)
    assert (
        claim.describe() == f"zone {ZONE}: fence moved from no fence to epoch 3 at {bind.primary}"
    )
    assert leader.read_fence().epoch == 3
    result = leader.apply([RecordChange(MAIL, "A", 60, "198.51.100.3")], epoch=3)
    assert result.epoch == 3
    assert _answers(bind, "198.51.100.3")


def test_a_stale_leader_is_refused_by_the_server(bind: BindPair, leader, provider) -> None:
    """R4: the old leader resumes after a pause with epoch 4; the new one holds 5."""
    old, new = leader, provider(ZONE)
    old.claim_fence(4)
    old.apply([RecordChange(MAIL, "A", 60, "192.0.2.4")], epoch=4)
    new.claim_fence(5)
    new.apply([RecordChange(MAIL, "A", 60, "198.51.100.5")], epoch=5)
    with pytest.raises(LeaseLost) as raised:
        old.apply([RecordChange(MAIL, "A", 60, "192.0.2.44")], epoch=4)
    assert str(raised.value) == (
        f"update of zone {ZONE} at {bind.primary} refused by the server's fence check "
        "(NXRRSET): the fence now holds epoch=5 — stopping"
    )
    with pytest.raises(LeaseLost, match=r"the fence holds epoch=5, newer than ours \(4\)"):
        old.claim_fence(4)
    assert _answers(bind, "198.51.100.5")


def test_an_update_without_a_claim_is_refused_when_fenced(leader) -> None:
    with pytest.raises(LeaseLost, match=r"\(NXRRSET\): the fence now holds no fence"):
        leader.apply([RecordChange(MAIL, "A", 60, "192.0.2.6")], epoch=6)


def test_a_fenced_apply_with_no_records_still_checks_the_fence(leader, provider) -> None:
    leader.claim_fence(8)
    assert leader.apply([], epoch=8).messages == 1
    provider(ZONE).claim_fence(9)
    with pytest.raises(LeaseLost, match="the fence now holds epoch=9"):
        leader.apply([], epoch=8)


def test_claiming_our_own_epoch_again_is_a_no_op(leader) -> None:
    leader.claim_fence(7)
    again = leader.claim_fence(7)
    assert (
        again.already_held and again.describe() == f"zone {ZONE}: fence already at epoch 7 (ours)"
    )


def test_a_fence_that_is_not_one_epoch_stops_the_claim(leader) -> None:
    _set_fence(leader, '"epoch=1"', '"epoch=2"')
    with pytest.raises(Failed, match=r"holds \['epoch=1', 'epoch=2'\], not one \"epoch=N\""):
        leader.claim_fence(9)


@pytest.mark.parametrize("round_", range(10))
def test_two_writers_racing_one_compare_and_set_have_one_winner(
    leader, provider, round_: int
) -> None:
    """Both read the same fence, then both send their CAS at once: one must lose."""
    base = 100 + 10 * round_
    _set_fence(leader, f'"epoch={base}"')
    first, second = leader, provider(ZONE)
    seen_first, seen_second = first.read_fence(), second.read_fence()
    assert seen_first.epoch == seen_second.epoch == base
    start = threading.Barrier(2)

    def cas(writer: Rfc2136Provider, seen, epoch: int) -> bool:
        start.wait()
        return writer.compare_and_set_fence(seen, epoch)

    won = run_together(
        lambda: cas(first, seen_first, base + 1), lambda: cas(second, seen_second, base + 2)
    )
    assert sorted(won) == [False, True], won
    winner = base + 1 if won[0] else base + 2
    assert leader.read_fence().epoch == winner


def test_racing_claims_leave_the_newest_epoch_holding_the_fence(
    bind: BindPair, leader, provider
) -> None:
    """Whatever the interleaving, epoch 21 ends up holding the fence and 20 is refused."""
    leader.claim_fence(19)
    older, newer = leader, provider(ZONE)
    results = run_together(lambda: older.claim_fence(20), lambda: newer.claim_fence(21))
    assert isinstance(results[1], FenceClaim), results[1]
    # 20 either lost outright, or won first and was superseded by 21 at once.
    assert isinstance(results[0], LeaseLost | FenceClaim), results[0]
    assert leader.read_fence().epoch == 21
    with pytest.raises(LeaseLost):
        older.apply([RecordChange(MAIL, "A", 60, "192.0.2.20")], epoch=20)
    newer.apply([RecordChange(MAIL, "A", 60, "198.51.100.21")], epoch=21)
    assert _answers(bind, "198.51.100.21")


def _serial(bind: BindPair) -> int:
    return soa_serials(ZONE, [bind.servers[0]])[0].serial


def test_a_claiming_update_moves_fence_and_records_in_one_transaction(
    bind: BindPair, leader
) -> None:
    leader.claim_fence(30)
    before = _serial(bind)
    result = leader.apply_claiming([RecordChange(MAIL, "A", 60, "198.51.100.31")], epoch=31)
    assert (result.epoch, result.messages) == (31, 1)
    assert leader.read_fence().epoch == 31
    assert _serial(bind) == before + 1, "one transaction: the claim and the change together"
    assert _answers(bind, "198.51.100.31")
    # Our own epoch already there: a plain fenced update, no second claim.
    again = leader.apply_claiming([RecordChange(MAIL, "A", 60, "198.51.100.32")], epoch=31)
    assert again.epoch == 31 and leader.read_fence().epoch == 31
    assert _answers(bind, "198.51.100.32")


def test_a_stale_claiming_update_changes_nothing(bind: BindPair, leader, provider) -> None:
    provider(ZONE).claim_fence(41)
    provider(ZONE).apply([RecordChange(MAIL, "A", 60, "198.51.100.41")], epoch=41)
    before = _serial(bind)
    with pytest.raises(LeaseLost, match=r"the fence holds epoch=41, newer than ours \(40\)"):
        leader.apply_claiming([RecordChange(MAIL, "A", 60, "192.0.2.40")], epoch=40)
    assert _serial(bind) == before
    assert _answers(bind, "198.51.100.41")


def test_a_claiming_update_that_loses_the_race_reads_again_and_stops(
    bind: BindPair, leader, provider
) -> None:
    """The fence moves to a newer epoch between our read and our message: the server
    refuses the message (its prerequisite no longer holds), and the next read stops us."""
    _set_fence(leader, '"epoch=50"')
    newer = provider(ZONE)
    original = leader.read_fence

    def read_then_lose_the_race():
        seen = original()
        if seen.epoch == 50:
            newer.claim_fence(52)
        return seen

    leader.read_fence = read_then_lose_the_race  # type: ignore[method-assign]
    with pytest.raises(LeaseLost, match=r"the fence holds epoch=52, newer than ours \(51\)"):
        leader.apply_claiming([RecordChange(MAIL, "A", 60, "192.0.2.51")], epoch=51)
    assert original().epoch == 52
