"""The mirror health check and readiness on NetApp volumes: ONTAP's relationship state,
healthy flag, lag and last transfer become the check's result; a cluster that does not
answer is `down`. ONTAP is the fake of tests/storage/ontap_fake.py (sample payloads),
or a closed port on 127.0.0.1."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from orchestrator.checks import Status, readiness, run_checks
from orchestrator.checks.result import CheckResult
from orchestrator.config import Topology, load_topology
from tests.storage.ontap_fake import CREDENTIALS, FakeOntap, install, netapp_topology, record

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra" / "topology.yaml"


@pytest.fixture
def ontap(monkeypatch: pytest.MonkeyPatch) -> FakeOntap:
    return install(monkeypatch)


def mirror_check(topo: Topology) -> CheckResult:
    [result] = run_checks(topo, ["mirrors"], timeout=0.5).results
    return result


@pytest.mark.parametrize(
    ("payload", "status", "words", "figures"),
    [
        (
            "snapmirrored_healthy",
            Status.OK,
            "",
            {"state": 0.0, "healthy": 1.0, "lag_seconds": 151.0, "last_transfer_seconds": 2.0},
        ),
        (
            "paused_unhealthy",
            Status.DEGRADED,
            "transfers are quiesced; lags 101100 s, over the 300 s RPO limit",
            {"state": 1.0, "healthy": 0.0, "lag_seconds": 101_100.0},
        ),
        (
            "broken_off",
            Status.DEGRADED,
            "broken off: dc2 is writable",
            {"state": 2.0, "healthy": 1.0, "lag_seconds": 600.5, "last_transfer_seconds": 65.0},
        ),
    ],
)
def test_ontap_state_health_and_lag_become_the_result(
    ontap: FakeOntap, payload: str, status: Status, words: str, figures: dict[str, float]
) -> None:
    ontap.holds("dc2", record(payload))
    result = mirror_check(netapp_topology())
    assert (result.site, result.target, result.status) == ("dc2", "mirror mail", status)
    assert words in result.reason
    assert dict(result.figures) == figures


def test_an_unhealthy_relationship_within_the_rpo_is_degraded(ontap: FakeOntap) -> None:
    ontap.holds("dc2", record("snapmirrored_healthy", healthy=False))
    result = mirror_check(netapp_topology())
    assert result.status is Status.DEGRADED
    assert result.reason == "the driver reports it unhealthy (lag 151 s)"


def test_the_paused_relationships_reason_is_ontaps(ontap: FakeOntap) -> None:
    ontap.holds("dc2", record("paused_unhealthy"))
    assert "Scheduled update failed to start" in mirror_check(netapp_topology()).reason


def test_a_cluster_that_does_not_answer_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name in CREDENTIALS.values():
        monkeypatch.setenv(name, "admin:secret")
    topo = netapp_topology({"dc1": f"127.0.0.1:{port}", "dc2": f"127.0.0.1:{port}"})
    result = mirror_check(topo)
    assert (result.site, result.status) == ("dc2", Status.DOWN)
    assert f"ONTAP https://127.0.0.1:{port} unreachable" in result.reason


def test_unset_credentials_are_down_with_the_fix(
    ontap: FakeOntap, monkeypatch: pytest.MonkeyPatch
) -> None:
    ontap.holds("dc2", record("snapmirrored_healthy"))
    monkeypatch.delenv(CREDENTIALS["dc2"])
    result = mirror_check(netapp_topology())
    assert result.status is Status.DOWN
    assert f"environment variable {CREDENTIALS['dc2']} is not set" in result.reason


def test_after_a_failover_the_broken_relationship_into_the_new_site_is_read(
    ontap: FakeOntap,
) -> None:
    # dc2 serves; nothing mirrors into dc1 yet, and dc2's copy is the broken-off one.
    ontap.holds("dc2", record("broken_off"))
    result = mirror_check(netapp_topology(active_site="dc2"))
    assert (result.site, result.status) == ("dc2", Status.DEGRADED)
    assert "broken off: dc2 is writable" in result.reason


def test_after_a_reprotect_the_relationship_into_the_old_site_is_read(ontap: FakeOntap) -> None:
    ontap.holds("dc2", record("broken_off"))
    ontap.holds("dc1", record("snapmirrored_healthy", reverse=True))
    result = mirror_check(netapp_topology(active_site="dc2"))
    assert (result.site, result.status, result.reason) == ("dc1", Status.OK, "")


# --- readiness ----------------------------------------------------------------------


def test_a_netapp_mirror_within_its_rpo_is_ready(ontap: FakeOntap) -> None:
    ontap.holds("dc2", record("snapmirrored_healthy"))
    verdict = readiness(netapp_topology(), "dc2")
    assert verdict.ready, verdict.reasons
    assert dict(verdict.loss) == {"volume": 151.0}


def test_a_netapp_mirror_over_its_rpo_is_refused_by_how_much(ontap: FakeOntap) -> None:
    ontap.holds("dc2", record("snapmirrored_healthy", lag_time="PT6M"))
    verdict = readiness(netapp_topology(), "dc2")
    assert not verdict.ready
    assert verdict.reasons == ("volume mirror mail lags 360 s, over the 300 s limit by 60 s",)


def test_an_unreachable_cluster_makes_the_loss_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name in CREDENTIALS.values():
        monkeypatch.setenv(name, "admin:secret")
    verdict = readiness(netapp_topology({"dc1": "x.test", "dc2": f"127.0.0.1:{port}"}), "dc2")
    assert not verdict.ready
    assert (
        "volume mirrors loss is unknown: mirror mail's state could not be read"
        in (verdict.reasons[0])
    )


def test_the_example_zimbra_volumes_within_their_rpo_are_ready(
    ontap: FakeOntap, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reference design, its NetApp volumes read from ONTAP. LDAP and the object
    store are left out: their readiness is judged in test_gates and on the lab."""
    topo = load_topology(EXAMPLE).model_copy(update={"ldap": None, "object_store": None})
    assert topo.volumes and {v.driver for v in topo.volumes} == {"netapp"}
    for site in ("dc1", "dc2"):
        monkeypatch.setenv(f"ONTAP_{site.upper()}_CREDENTIALS", "admin:secret")
    for volume in topo.volumes:
        source, dest = volume.sites["dc1"], volume.sites["dc2"]
        relationship = record(
            "snapmirrored_healthy",
            source={"path": f"{source.svm}:{source.volume}"},
            destination={"path": f"{dest.svm}:{dest.volume}"},
        )
        ontap.holds("dc2", relationship, cluster=dest.cluster)
    sweep = run_checks(topo, ["mirrors"])
    assert [r.status for r in sweep.results] == [Status.OK] * len(topo.volumes)
    verdict = readiness(topo, "dc2", sweep)
    assert verdict.ready, verdict.reasons
    assert verdict.describe() == (
        "ready to move to dc2: estimated loss volume mirrors 151.0 s, within the RPO limits."
    )
