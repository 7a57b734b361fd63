"""Issue 4 on the real lab: failover after dc1 is killed, the data-readiness gate, and
the way back (heal, reprotect, switchover)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from orchestrator.lab import layout
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab


def _mirror(cluster: Cluster, operation: str) -> dict:
    config = cluster.lab.state_dir / "volumes" / "mirror-mail.config.json"
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.storage", "--config", str(config), operation],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["status"]


def test_failover_after_dc1_is_killed_and_the_gate_on_mirror_lag(cluster: Cluster) -> None:
    cluster.assert_protected("dc1")
    rpo = cluster.topology.policy.rpo_limits.volume
    try:
        # Stop the mirror's transfers long enough to exceed the volume RPO limit.
        _mirror(cluster, "quiesce")
        last = cluster.send_mail("dc1")
        cluster.wait_delivered("dc1", last)
        time.sleep(rpo + 2)  # the lag must really exceed the limit: this is the scenario
        cluster.lab.ok("kill-site", "dc1")

        refused = cluster.sitectl("failover", "--to", "dc2", "--yes", "--json")

        assert refused.returncode == 4, refused.stderr
        result = json.loads(refused.stdout)
        assert result["failed_step"] == "readiness/gate"
        assert "volume mirror mailstore lags" in result["message"]
        assert "--accept-data-loss" in result["message"]
        assert cluster.mounted_sites() == {"dc1"}, "the gate refused before anything changed"

        accepted = cluster.sitectl(
            "failover",
            "--to",
            "dc2",
            "--yes",
            "--json",
            "--accept-data-loss",
            "scenario: dc1 lost, its last minute of mail is gone",
        )
        assert accepted.returncode == 0, accepted.stderr + accepted.stdout
        outcome = json.loads(accepted.stdout)
        statuses = {s["id"]: s["status"] for s in outcome["steps"]}
        old_site = [i for i in statuses if "/dc1/" in i]
        assert old_site and {statuses[i] for i in old_site} == {"skipped"}, statuses
        assert statuses["dns/promote/lab.internal."] == "done"
        assert all(v in ("done", "skipped") for v in statuses.values())
        # dc2 serves: its volume is mounted, its application answers, DNS points there
        # on every server that is still alive.
        assert layout.service_ip("dc2") in {
            v for k, vals in cluster.dns_answers_alive().items() for v in vals
        }
        assert set(cluster.app_answers("dc2").values()) == {"up"}
        assert cluster.status()["active_site"] == "dc2"
        assert cluster.mail_count("dc2", last) == 0, "quiesced: the last mail was lost"
        # The accepted loss is on record with its reason.
        gate = next(s for s in outcome["steps"] if s["id"] == "readiness/gate")
        assert gate["status"] == "done"
        accepted_reason = "scenario: dc1 lost, its last minute of mail is gone"
        assert outcome["accept_data_loss"] == accepted_reason
        assert cluster.status()["operation"]["accept_data_loss"] == accepted_reason
    finally:
        cluster.lab.heal_all()
        if cluster.status()["active_site"] == "dc1":
            _mirror(cluster, "resume")
    # The way back: dc1 returns with a stale DNS primary and a stale volume; reprotect
    # demotes the one and reverses the other, then a switchover moves the service home.
    cluster.ok("reprotect", "--yes", "--reason", "scenario: failback")
    cluster.ok("switchover", "--to", "dc1", "--yes", "--reason", "scenario: failback")
    cluster.ok("reprotect", "--yes", "--reason", "scenario: protect dc1 again")
    cluster.assert_protected("dc1")


def _hung_failover(cluster: Cluster, lost: str, to: str) -> dict:
    """Hang `lost` (SIGSTOP: its kernel still accepts TCP, its servers say nothing, as
    in a partition that leaves hosts up), fail over to `to`, then let `lost` resume."""
    cluster.lab.ok("pause-site", lost)
    try:
        # The gate cannot date what the hung site wrote last (its LDAP masters and
        # store say nothing): an upper bound over the limit, accepted as an operator would.
        done = cluster.sitectl(
            "failover",
            "--to",
            to,
            "--yes",
            "--json",
            "--reason",
            f"scenario: {lost} hung",
            "--accept-data-loss",
            f"scenario: {lost} hung, its last writes may be lost",
        )
    finally:
        cluster.lab.ok("heal-site", lost)
    assert done.returncode == 0, done.stderr + done.stdout
    outcome = json.loads(done.stdout)
    statuses = {s["id"]: s["status"] for s in outcome["steps"]}
    # The lab's hosts are this machine: its stop commands continue a hung process to
    # stop it, so an old-site step may be done; none may fail the failover.
    old_site = [i for i in statuses if f"/{lost}/" in i]
    assert old_site and {statuses[i] for i in old_site} <= {"done", "skipped"}, statuses
    assert set(statuses.values()) <= {"done", "skipped"}, statuses
    return statuses


def test_failover_from_a_hung_site_and_again_from_the_other_after_reprotect(
    cluster: Cluster,
) -> None:
    """dc1 hangs: fail over to dc2. dc1 resumes, its old application with it, and
    reprotect stops that application and protects dc2. Then dc2 hangs: fail over back.
    The topology names dc1's DNS server primary, but reprotect demoted it after the
    first failover, so the second must promote it again or no record could move."""
    cluster.assert_protected("dc1")

    first = _hung_failover(cluster, "dc1", "dc2")
    assert first["dns/promote/lab.internal."] == "done"
    assert cluster.status()["active_site"] == "dc2"
    lab_rows = cluster.lab.status()
    assert not [n for n, row in lab_rows.items() if row["state"] == "paused"], lab_rows
    cluster.ok("reprotect", "--yes", "--reason", "scenario: dc1 is back")
    cluster.assert_protected("dc2")

    second = _hung_failover(cluster, "dc2", "dc1")
    assert second["dns/promote/lab.internal."] == "done", "dc1's server was a secondary"
    assert cluster.status()["active_site"] == "dc1"
    cluster.ok("reprotect", "--yes", "--reason", "scenario: dc2 is back")
    cluster.assert_protected("dc1")
