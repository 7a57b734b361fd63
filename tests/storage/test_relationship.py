"""Pure table tests: the relationship state machine, status and the parsers. No volumes."""

from __future__ import annotations

import pytest

from orchestrator.storage import MirrorState
from orchestrator.storage.btrfs import parse_mounts, parse_subvolume_show
from orchestrator.storage.relationship import Op, Relationship, Verdict, decide, status_of

M, Q, B = MirrorState.MIRRORED, MirrorState.QUIESCED, MirrorState.BROKEN
APPLY, NOOP, SKIP, REFUSE = Verdict.APPLY, Verdict.NOOP, Verdict.SKIP, Verdict.REFUSE


def rel(state: MirrorState, last: str | None = "data@3") -> Relationship:
    return Relationship(
        name="mail",
        source="dc1",
        destination="dc2",
        state=state,
        seq=3,
        last_snapshot=last,
        last_snapshot_created=1000.0 if last else None,
    )


# (state, op, new_source, verdict): the specification of every driver's idempotency.
DECISIONS = [
    (M, Op.TRANSFER, None, APPLY),
    (Q, Op.TRANSFER, None, SKIP),
    (B, Op.TRANSFER, None, SKIP),
    (M, Op.UPDATE, None, APPLY),
    (Q, Op.UPDATE, None, APPLY),  # the final sync of a switchover runs quiesced
    (B, Op.UPDATE, None, REFUSE),
    (M, Op.QUIESCE, None, APPLY),
    (Q, Op.QUIESCE, None, NOOP),
    (B, Op.QUIESCE, None, NOOP),
    (M, Op.RESUME, None, NOOP),
    (Q, Op.RESUME, None, APPLY),
    (B, Op.RESUME, None, REFUSE),
    (M, Op.BREAK, None, APPLY),
    (Q, Op.BREAK, None, APPLY),
    (B, Op.BREAK, None, NOOP),
    (M, Op.REVERSE, None, REFUSE),
    (Q, Op.REVERSE, None, REFUSE),
    (B, Op.REVERSE, None, APPLY),
    (B, Op.REVERSE, "dc2", APPLY),
    (B, Op.REVERSE, "dc1", REFUSE),  # the old source cannot "become" the source
    (M, Op.REVERSE, "dc1", NOOP),  # a repeated reverse that already landed
    (Q, Op.REVERSE, "dc1", NOOP),
    (M, Op.REVERSE, "dc2", REFUSE),
]


@pytest.mark.parametrize(
    ("state", "op", "new_source", "verdict"),
    DECISIONS,
    ids=[f"{s.value}-{o.value}-{n}" for s, o, n, _ in DECISIONS],
)
def test_decide(state: MirrorState, op: Op, new_source: str | None, verdict: Verdict) -> None:
    decision = decide(rel(state), op, new_source)
    assert decision.verdict is verdict
    assert decision.reason


def test_break_refused_before_any_transfer() -> None:
    assert decide(rel(M, last=None), Op.BREAK).verdict is REFUSE


# (state, seconds since the last snapshot, last_error, healthy)
HEALTH = [
    (M, 5.0, None, True),
    (M, 30.0, None, True),
    (M, 31.0, None, False),  # mirrored but behind the allowed lag
    (Q, 500.0, None, True),  # deliberate pause: healthy, lag still reported
    (B, 500.0, None, True),
    (M, 1.0, "btrfs receive failed", False),
    (Q, 1.0, "btrfs receive failed", False),
]


@pytest.mark.parametrize(("state", "age", "error", "healthy"), HEALTH)
def test_status_health_and_lag(
    state: MirrorState, age: float, error: str | None, healthy: bool
) -> None:
    r = Relationship(
        name="mail",
        source="dc1",
        destination="dc2",
        state=state,
        seq=3,
        last_snapshot="data@3",
        last_snapshot_created=1000.0,
        last_error=error,
    )
    status = status_of(r, now=1000.0 + age, max_lag_seconds=30.0)
    assert status.lag_seconds == age
    assert status.healthy is healthy


def test_status_before_any_transfer_has_no_lag_and_is_unhealthy() -> None:
    status = status_of(rel(M, last=None), now=5.0, max_lag_seconds=30.0)
    assert status.lag_seconds is None and not status.healthy


@pytest.mark.parametrize(("state", "writable"), [(M, "dc1"), (Q, "dc1"), (B, "dc2")])
def test_writable_site(state: MirrorState, writable: str) -> None:
    assert status_of(rel(state), 1000.0, 30.0).writable_site == writable


def test_relationship_json_round_trip_and_history_is_bounded() -> None:
    r = rel(M)
    for i in range(30):
        r = r.with_transfer(f"data@{i}", i, float(i), float(i) + 1, 0.01, Op.TRANSFER)
    assert len(r.history) == 20
    r = r.with_error(99.0, Op.UPDATE, "boom")
    assert Relationship.from_json(r.to_json()) == r


def test_from_json_ignores_unknown_fields() -> None:
    data = rel(Q).to_json() | {"written_by": "a newer version"}
    assert Relationship.from_json(data) == rel(Q)


SHOW_RECEIVED = """snaps/data@4
\tName: \t\t\tdata@4
\tUUID: \t\t\t7f1c0a4e-1111-4a4a-9a9a-000000000001
\tParent UUID: \t\t7f1c0a4e-1111-4a4a-9a9a-000000000000
\tReceived UUID: \t\tcefdfb36-42e6-4443-87cd-699fa5952b10
\tCreation time: \t\t2026-11-22 13:52:26 +0000
\tGeneration: \t\t31
\tGen at creation: \t29
\tFlags: \t\t\treadonly
\tSnapshot(s):
"""

SHOW_LIVE = """data
\tName: \t\t\tdata
\tUUID: \t\t\t9041ab17-bd53-ff43-ad90-50d45249fbaf
\tParent UUID: \t\t-
\tReceived UUID: \t\t-
\tFlags: \t\t\t-
\tSnapshot(s):
\t\t\t\tsnaps/data@1
"""


def test_parse_subvolume_show() -> None:
    received = parse_subvolume_show(SHOW_RECEIVED)
    assert received.uuid.endswith("0001")
    assert received.parent_uuid and received.parent_uuid.endswith("0000")
    assert received.received_uuid == "cefdfb36-42e6-4443-87cd-699fa5952b10"
    assert received.readonly
    assert received.created_generation == 29  # not the current "Generation"
    live = parse_subvolume_show(SHOW_LIVE)
    assert (live.parent_uuid, live.received_uuid, live.readonly) == (None, None, False)


def test_parse_mounts_reads_subvol_and_unescapes_spaces() -> None:
    text = (
        "/dev/loop3 /tmp/lab/volumes/dc1 btrfs rw,relatime,space_cache=v2,subvolid=5,subvol=/ 0 0\n"
        "/dev/loop3 /tmp/my\\040lab/dc1/mail btrfs rw,relatime,subvolid=256,subvol=/data 0 0\n"
    )
    pool, service = parse_mounts(text)
    assert (pool.source, pool.subvol) == ("/dev/loop3", "")
    assert (service.target, service.subvol) == ("/tmp/my lab/dc1/mail", "data")
