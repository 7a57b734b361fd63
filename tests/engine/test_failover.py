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
