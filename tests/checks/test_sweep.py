"""The sweep's own rules: cut-offs, a check that crashes, and the cross-node summaries."""

from __future__ import annotations

import threading

import pytest

from orchestrator.checks import CheckResult, Status, Sweep, dns, ldap, run_checks, zookeeper
from orchestrator.checks.metrics import exposition
from orchestrator.checks.result import Check
from orchestrator.checks.sweep import run_bounded
from tests.checks.topologies import topology

OK, DEG, DOWN = Status.OK, Status.DEGRADED, Status.DOWN


def test_a_check_still_running_at_the_cutoff_is_down_and_the_sweep_goes_on() -> None:
    release = threading.Event()

    def hangs(_timeout: float) -> CheckResult:
        release.wait()  # ignores its timeout, as a buggy check might
        raise AssertionError("never reached in this test")

    quick = Check(
        "zookeeper", "dc1", "fast", lambda t: CheckResult("zookeeper", "dc1", "fast", OK, "", {})
    )
    try:
        results = run_bounded([Check("ldap", "dc2", "slow", hangs), quick], 0.1, 0.2)
    finally:
        release.set()
    assert [(r.target, r.status) for r in results] == [("slow", DOWN), ("fast", OK)]
    assert results[0].reason == "no complete answer within 0.2 s"


def test_a_check_that_crashes_costs_one_result() -> None:
    def crashes(_timeout: float) -> CheckResult:
        raise KeyError("figures")

    (result,) = run_bounded([Check("dns", None, "zone x", crashes)], 1.0, 2.0)
    assert result.status is DOWN
    assert result.reason == "the check itself failed: KeyError: 'figures'"


def test_unknown_systems_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown system"):
        run_checks(topology(), ["ldap", "nfs"])


def reader(uri: str, site: str, **csn: float) -> CheckResult:
    return CheckResult("ldap", site, uri, OK, "", {f"csn_sid_{k[1:]}": v for k, v in csn.items()})


def test_ldap_summary_adds_lag_per_sid_and_degrades_beyond_the_limit() -> None:
    results = ldap.summarize(
        [
            reader("a", "dc1", s1=100.0, s3=50.0),
            reader("b", "dc2", s1=20.0, s3=50.0),
            reader("c", "dc2", s3=50.0),
            CheckResult("ldap", "dc2", "d", DOWN, "hung", {}),
        ],
        limit=60.0,
    )
    a, b, c, d = results
    assert (a.status, a.figures["lag_seconds"]) == (OK, 0.0)
    assert (b.status, b.figures["sid_1_lag_seconds"]) == (DEG, 80.0)
    assert b.reason == "behind sid 1 by 80.0 s (limit 60 s)"
    assert c.status is DEG and "holds no change from sid 1" in c.reason
    assert d.status is DOWN and "lag_seconds" not in d.figures


def test_the_ldap_canary_is_not_read_as_a_master() -> None:
    canary = CheckResult("ldap", "dc1", "canary", OK, "", {"sid_3_canary_seconds": 0.5})
    results = ldap.summarize([reader("a", "dc1", s1=100.0), canary], limit=60.0)
    assert results[1] == canary
    assert ldap.views(results) == {"a": {1: 100.0}}


def node(address: str, status: Status, leader: float | None = None) -> CheckResult:
    figures = {} if leader is None else {"leader": leader}
    return CheckResult("zookeeper", "dc1", address, status, "", figures)


@pytest.mark.parametrize(
    ("nodes", "status", "words"),
    [
        ([node("a", OK, 1.0), node("b", OK, 0.0), node("c", OK, 0.0)], OK, ""),
        ([node("a", OK, 1.0), node("b", OK, 0.0), node("c", DOWN)], DEG, "quorum holds on 2 of 3"),
        ([node("a", OK, 0.0), node("b", DOWN), node("c", DOWN)], DOWN, "no quorum: 1 of 3"),
        ([node("a", OK, 0.0), node("b", OK, 0.0), node("c", DOWN)], DOWN, "0 nodes claim to lead"),
    ],
)
def test_zookeeper_quorum(nodes: list, status: Status, words: str) -> None:
    quorum = zookeeper.summarize(nodes)[-1]
    assert (quorum.site, quorum.target, quorum.status) == (None, "quorum", status)
    assert words in quorum.reason


def test_dns_servers_behind_on_the_serial_are_degraded() -> None:
    results = dns.summarize(
        [
            CheckResult("dns", "dc1", "zone z. at 127.0.1.1:53", OK, "", {"soa_serial": 7.0}),
            CheckResult("dns", "dc2", "zone z. at 127.0.2.1:53", OK, "", {"soa_serial": 6.0}),
            CheckResult("dns", "dc2", "zone y. at 127.0.2.1:53", OK, "", {"soa_serial": 1.0}),
        ]
    )
    assert [r.status for r in results] == [OK, DEG, OK]
    assert results[1].reason == "SOA serial 6 is behind 7 (transfers lag?)"


def test_metrics_exposition() -> None:
    text = exposition(
        Sweep(
            (
                CheckResult(
                    "ldap",
                    "dc2",
                    "ldap://127.0.2.11:389",
                    OK,
                    "",
                    {"sid_1_lag_seconds": 2.5, "csn_sid_1": 1.0},
                ),
                CheckResult(
                    "mirrors", "dc2", "mirror mailstore", DEG, "quiesced", {"lag_seconds": 40.0}
                ),
                CheckResult(
                    "object-store",
                    "dc1",
                    "bucket mail-blobs@dc1",
                    OK,
                    "",
                    {"replication_lag_seconds": 0.25},
                ),
                CheckResult("zookeeper", None, "quorum", DOWN, "no quorum", {}),
            ),
            seconds=1.5,
        )
    )
    for line in [
        'sitectl_check_up{site="dc2",system="ldap",target="ldap://127.0.2.11:389"} 1.0',
        'sitectl_check_up{site="",system="zookeeper",target="quorum"} 0.0',
        'sitectl_check_status{site="dc2",system="mirrors",target="mirror mailstore"} 1.0',
        'sitectl_ldap_replication_lag_seconds{master="ldap://127.0.2.11:389",sid="1"} 2.5',
        'sitectl_mirror_lag_seconds{volume="mailstore"} 40.0',
        'sitectl_object_store_replication_lag_seconds{bucket="mail-blobs"} 0.25',
        "sitectl_sweep_duration_seconds 1.5",
    ]:
        assert line in text.splitlines(), line


def test_results_are_frozen_snapshots() -> None:
    figures = {"lag_seconds": 1.0}
    r = CheckResult("mirrors", "dc2", "mirror m", OK, "", figures)
    figures["lag_seconds"] = 99.0
    assert r.figures["lag_seconds"] == 1.0
    with pytest.raises(TypeError):
        r.figures["lag_seconds"] = 5.0  # type: ignore[index]
