"""Pure tests of the ONTAP SnapMirror client: sample payloads in, statuses and requests out."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import Failed
from orchestrator.storage import MirrorState
from orchestrator.storage.netapp import Request, parse_duration, parse_relationship, request_for

PAYLOADS = Path(__file__).parent / "ontap"
UUID = "4512b2d2-fd60-11e8-8929-005056bbfe52"


def payload(name: str) -> dict[str, Any]:
    return dict(json.loads((PAYLOADS / f"{name}.json").read_text()))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT2S", 2),
        ("PT2M31S", 151),
        ("P1DT4H5M", 101_100),
        ("PT10M0.5S", 600.5),
        ("P2D", 172_800),
        ("PT0S", 0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "2 minutes", "PT5X"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(Failed):
        parse_duration(text)


# (payload, state, healthy, lag, transfer duration, error fragment)
CASES = [
    ("snapmirrored_healthy", MirrorState.MIRRORED, True, 151.0, 2.0, None),
    ("paused_unhealthy", MirrorState.QUIESCED, False, 101_100.0, None, "Transfer is paused"),
    ("broken_off", MirrorState.BROKEN, True, 600.5, 65.0, None),
]


@pytest.mark.parametrize(("name", "state", "healthy", "lag", "duration", "error"), CASES)
def test_parse_relationship(
    name: str,
    state: MirrorState,
    healthy: bool,
    lag: float,
    duration: float | None,
    error: str | None,
) -> None:
    status = parse_relationship(payload(name), "mail")
    assert (status.state, status.healthy, status.lag_seconds) == (state, healthy, lag)
    assert status.last_transfer_duration == duration
    assert (status.source, status.destination) == ("vs0:mail_data", "vs1:mail_data_dst")
    if error is None:
        assert status.last_error is None
    else:
        assert status.last_error is not None and error in status.last_error


def test_parse_relationship_transfer_end_time() -> None:
    status = parse_relationship(payload("snapmirrored_healthy"), "mail")
    assert status.last_transfer_at == datetime(2026, 11, 22, 13, 55, 2, tzinfo=UTC).timestamp()


def test_uninitialized_relationship_is_refused() -> None:
    with pytest.raises(Failed, match="uninitialized"):
        parse_relationship(payload("uninitialized"), "mail")


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("quiesce", Request("PATCH", f"/api/snapmirror/relationships/{UUID}", {"state": "paused"})),
        (
            "resume",
            Request("PATCH", f"/api/snapmirror/relationships/{UUID}", {"state": "snapmirrored"}),
        ),
        (
            "break",
            Request("PATCH", f"/api/snapmirror/relationships/{UUID}", {"state": "broken_off"}),
        ),
        ("update", Request("POST", f"/api/snapmirror/relationships/{UUID}/transfers", {})),
    ],
)
def test_request_for(op: str, expected: Request) -> None:
    assert request_for(op, UUID) == expected


def test_status_request_asks_for_the_fields_it_parses() -> None:
    req = request_for("status", UUID)
    assert req.method == "GET" and "lag_time" in req.path and "healthy" in req.path


def test_reverse_is_not_offered() -> None:
    with pytest.raises(Failed):
        request_for("reverse", UUID)


def test_both_drivers_satisfy_the_interface(tmp_path: Path) -> None:
    from orchestrator.storage import BtrfsMirror, MirrorConfig, MirrorDriver, SitePaths
    from orchestrator.storage.netapp import OntapSnapMirror

    ontap = OntapSnapMirror("https://cluster.example.test", UUID, "admin", "secret")
    sites = {s: SitePaths(tmp_path / s, tmp_path / s / "mail") for s in ("dc1", "dc2")}
    lab = BtrfsMirror(
        MirrorConfig(
            name="mail",
            source="dc1",
            destination="dc2",
            sites=sites,
            state_file=tmp_path / "state.json",
        )
    )
    assert isinstance(ontap, MirrorDriver)
    assert isinstance(lab, MirrorDriver)
