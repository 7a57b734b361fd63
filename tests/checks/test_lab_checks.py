"""The checks against the lab's real servers: fresh, hung, killed, lagging, forged keys.

No timed assertions: "within the timeout" is shown by the reasons the checks give
(a hung master is reported as not answering, not as a hang of the test), and waiting
for convergence goes through `eventually`. Every fault is healed in a `finally`.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from orchestrator.checks import (
    CheckResult,
    Status,
    Sweep,
    blocking_problems,
    ldap_canary,
    readiness,
    run_checks,
)
from orchestrator.cli import health
from orchestrator.config import Topology
from orchestrator.lab import procs, s3
from tests.checks.conftest import (
    other_mail_ca,
    rpo_limit,
    wrong_probe_password,
    wrong_s3_secret,
    wrong_tsig_secret,
)
from tests.conftest import LabHandle, eventually

pytestmark = pytest.mark.lab


def not_ok(sweep: Sweep) -> list[str]:
    return [r.describe() for r in sweep.results if r.status is not Status.OK]


def all_ok(topo: Topology) -> Sweep:
    sweep = run_checks(topo)
    problems = not_ok(sweep)
    assert not problems, "\n".join(problems)
    return sweep


def quorum(topo: Topology) -> CheckResult:
    return next(r for r in run_checks(topo, ["zookeeper"]).results if r.target == "quorum")


def put_replication_rule(lab: LabHandle) -> bool:
    s3.replicate(lab.state(), "dc1", "dc2")
    return True


@pytest.fixture(scope="module")
def topo(lab_topology: Callable[..., Topology]) -> Topology:
    return lab_topology()


def test_everything_is_ok_on_a_fresh_lab(topo: Topology) -> None:
    sweep = eventually(lambda: all_ok(topo), "every check ok on the fresh lab", within=60)
    systems = {r.system for r in sweep.results}
    assert systems == {
        "zookeeper",
        "ldap",
        "object-store",
        "mirrors",
        "dns",
        "application",
        "parity",
    }
    # The lab compares Postfix's message_size_limit (postconf) and Dovecot's
    # auth_mechanisms (its config file) between dc1 and dc2; both agree on a fresh lab.
    settings = sweep.for_system("parity")
    assert len(settings) == 2 and all(r.figures == {"equal": 1.0} for r in settings)
    masters = sweep.for_system("ldap")
    assert len(masters) == 4 and all("lag_seconds" in r.figures for r in masters)
    verdict = readiness(topo, "dc2", sweep)
    assert verdict.ready, verdict.describe()


def test_the_canaries_go_through_every_master_and_the_other_store(topo: Topology) -> None:
    sweep = run_checks(topo, ["ldap", "object-store"], canary=True, timeout=5)
    canary = next(r for r in sweep.results if r.target == ldap_canary.TARGET)
    assert canary.status is Status.OK, canary.describe()
    assert len(canary.figures) == 3  # the three masters it did not write to
    store = next(r for r in sweep.results if r.target.startswith("canary mail-blobs"))
    assert store.status is Status.OK and store.figures["replication_lag_seconds"] >= 0
    # The standby now holds a dated canary: an upper bound it can give on its own.
    again = run_checks(topo, ["object-store"], sites=["dc2"])
    assert "canary_age_seconds" in again.results[0].figures


def test_a_paused_site_is_down_not_a_hang(lab: LabHandle, topo: Topology) -> None:
    lab.ok("pause-site", "dc2")
    try:
        sweep = run_checks(topo)
        dc2_masters = [r for r in sweep.for_system("ldap") if r.site == "dc2"]
        assert len(dc2_masters) == 2
        for r in dc2_masters:
            assert r.status is Status.DOWN and "did not answer within" in r.reason, r.describe()
        assert all(r.status is Status.OK for r in sweep.for_system("ldap") if r.site == "dc1")
        # 2 of 3 nodes still serve; if dc2's node led, the other two elect a new leader
        # first, and the quorum is down until they have.
        eventually(lambda: quorum(topo).status is Status.DEGRADED, "quorum on 2 of 3 nodes")
        problems = blocking_problems(sweep, "ldap", from_site="dc1", to_site="dc2", mode="failover")
        assert len(problems) == 2 and all("the new site dc2 needs it" in p for p in problems)
        assert not readiness(topo, "dc2", sweep).ready
    finally:
        lab.ok("heal-site", "dc2")
    eventually(lambda: all_ok(topo), "all ok again after healing dc2", within=60)


def test_a_killed_site_is_down_and_readiness_still_answers(lab: LabHandle, topo: Topology) -> None:
    # A change written at dc1 just before the loss: what dc2 holds of it bounds the loss.
    assert ldap_canary.run_canary(topo, timeout=5).status is Status.OK
    lab.ok("kill-site", "dc1")
    try:
        sweep = run_checks(topo)
        for system in ("ldap", "object-store", "application"):
            dc1 = [r for r in sweep.for_system(system) if r.site == "dc1"]
            assert dc1 and all(r.status is Status.DOWN for r in dc1), [r.describe() for r in dc1]
        assert (
            blocking_problems(sweep, "ldap", from_site="dc1", to_site="dc2", mode="failover") == []
        )
        assert blocking_problems(sweep, "ldap", from_site="dc1", to_site="dc2", mode="switchover")
        verdict = readiness(topo, "dc2", sweep)
        # Computed from dc2 alone: the mirror's lag and an upper bound for LDAP.
        assert verdict.loss["volume"] is not None
        assert verdict.loss["ldap"] is not None, verdict.describe()
        assert any("upper bound" in n for n in verdict.notes), verdict.notes
        assert "dc2" in verdict.describe()
    finally:
        lab.ok("heal-site", "dc1")
        # The lab's stand-in store keeps buckets in memory: killed, it comes back without
        # its replication rule (a real store keeps it). Put it back as `lab up` does.
        eventually(lambda: put_replication_rule(lab), "the rule back on dc1's store", within=30)
    eventually(lambda: all_ok(topo), "all ok again after healing dc1", within=90)


def test_stopped_mirror_transfers_refuse_readiness_naming_the_mirror(
    lab: LabHandle, lab_topology: Callable[..., Topology]
) -> None:
    strict = lab_topology(rpo_limit("volume", "1s"))
    mirrord = lab.state().components["dc2-mirrord"]
    procs.signal_group(mirrord, signal.SIGSTOP)
    try:

        def refused() -> str:
            verdict = readiness(strict, "dc2")
            assert not verdict.ready, verdict.describe()
            return verdict.reasons[0]

        reason = eventually(refused, "readiness refusing once transfers stopped", within=30)
        assert reason.startswith("volume mirror mailstore lags ")
        assert ", over the 1 s limit by " in reason
    finally:
        lab.ok("heal-site", "dc2")


def test_a_paused_slapd_shows_its_lag_in_seconds(lab: LabHandle, topo: Topology) -> None:
    """While paused it is down; the canary written meanwhile reaches it only after it
    resumes, so its replication lag is at least the pause, in seconds."""
    paused = lab.state().components["dc2-ldap2"]
    procs.signal_group(paused, signal.SIGSTOP)
    resume = threading.Timer(2.0, procs.signal_group, args=(paused, signal.SIGCONT))
    try:
        (reading,) = [
            r
            for r in run_checks(topo, ["ldap"], timeout=1).results
            if r.target == "ldap://198.18.2.12:389"
        ]
        assert reading.status is Status.DOWN
        resume.start()
        canary = ldap_canary.run_canary(topo, timeout=10)
        lag = canary.figures[ldap_canary.FIGURE.format(4)]
        assert lag >= 1.0, canary.describe()  # it cannot have seen a write while stopped
        assert all(v < lag for k, v in canary.figures.items() if k != "sid_4_canary_seconds")
    finally:
        resume.cancel()
        lab.ok("heal-site", "dc2")


def test_a_forged_tsig_key_is_down_with_badsig(lab_topology: Callable[..., Topology]) -> None:
    forged = lab_topology(wrong_tsig_secret)
    results = [
        r for r in run_checks(forged, ["dns"]).results if r.target.startswith("update servers of")
    ]
    assert len(results) == 2
    for r in results:
        assert r.status is Status.DOWN and "BADSIG" in r.reason, r.describe()


def test_a_wrong_probe_password_is_a_refused_imap_login(
    lab_topology: Callable[..., Topology],
) -> None:
    forged = lab_topology(wrong_probe_password)
    # Dovecot answers a failed login only after its auth_failure_delay (2 s, the lab's
    # whole probe timeout): give the probe room to hear the refusal.
    results = run_checks(forged, ["application"], timeout=5).results
    (imap,) = [r for r in results if r.site == "dc1" and "imap://" in r.target]
    assert imap.status is Status.DOWN and "login refused" in imap.reason, imap.describe()
    others = [r for r in results if r is not imap]
    assert all(r.status is Status.OK for r in others), [r.describe() for r in others]


def test_mail_probes_that_cannot_verify_the_certificate_are_degraded_not_down(
    lab_topology: Callable[..., Topology],
) -> None:
    """The lab's mail answers, but over TLS sitectl cannot trust: degraded (someone must
    look), never down (a certificate is no reason to move the service)."""
    forged = lab_topology(other_mail_ca)
    results = run_checks(forged, ["application"]).results
    mail = [r for r in results if r.site == "dc1" and r.target.split(" ")[0] in ("mailbox", "mta")]
    assert len(mail) == 2
    for r in mail:
        assert r.status is Status.DEGRADED, r.describe()
        assert "TLS certificate not trusted" in r.reason, r.describe()


def test_a_wrong_s3_secret_is_not_authorised(lab_topology: Callable[..., Topology]) -> None:
    forged = lab_topology(wrong_s3_secret)
    for r in run_checks(forged, ["object-store"]).results:
        assert r.status is Status.DOWN and "not authorised" in r.reason, r.describe()


def test_cli_on_the_lab(lab_topology_file: Callable[..., Path]) -> None:
    app = typer.Typer()
    health.register(app)
    runner = CliRunner()
    config = str(lab_topology_file())

    def healthy_metrics() -> str:
        result = runner.invoke(app, ["health", "-c", config, "--metrics"])
        assert result.exit_code == 0, result.output
        return result.output

    text = eventually(healthy_metrics, "sitectl health exits 0", within=60)
    assert 'sitectl_check_up{site="dc2",system="ldap",target="ldap://198.18.2.11:389"} 1.0' in text
    assert "sitectl_ldap_replication_lag_seconds{" in text
    assert "sitectl_mirror_lag_seconds{" in text
    result = runner.invoke(app, ["readiness", "--to", "dc2", "-c", config, "--json"])
    assert result.exit_code == 0, result.output
    assert '"ready": true' in result.output
    result = runner.invoke(app, ["readiness", "--to", "witness", "-c", config])
    assert result.exit_code == 2
