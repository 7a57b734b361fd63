"""Issue 18 (items 1 and 3) on the real lab: the controllers renew dc1's site ticket; a
failover with dc1 killed makes nothing at dc2 writable before dc1's last renewal + ttl +
clock drift has passed; a switchover releases the ticket once dc1's application has
stopped and grants it to dc2 before dc2's application starts; a grant by hand is refused
without --force and audited with it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.records import StepRecord, StepStatus
from tests.conftest import eventually
from tests.engine.conftest import Cluster, lab_controllers

pytestmark = pytest.mark.lab


@pytest.fixture
def controllers(cluster: Cluster) -> Iterator[None]:
    with lab_controllers(cluster):
        yield


def _ticket(cluster: Cluster) -> dict[str, Any] | None:
    return cluster.ok("ticket", "show")["ticket"]


def _renewed_by(cluster: Cluster, site: str) -> dict[str, Any]:
    """The ticket once `site` holds it and its controller has renewed it since the grant."""

    def renewed() -> dict[str, Any] | None:
        ticket = _ticket(cluster)
        if ticket and ticket["holder"] == site and ticket["renewed_at"] > ticket["granted_at"]:
            return ticket
        return None

    return eventually(renewed, f"{site}'s controller renews the site ticket", within=30)


def _records(cluster: Cluster, op_id: str) -> dict[str, StepRecord]:
    topo = cluster.topology
    client = connect(topo, timeout=30)
    try:
        store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
        return store.records(op_id)
    finally:
        client.stop()
        client.close()


def _audit(path: Path, event: str) -> list[dict[str, Any]]:
    lines = path.read_text().splitlines() if path.exists() else []
    return [e for e in map(json.loads, lines) if e["event"] == event]


def _started(records: dict[str, StepRecord], prefixes: tuple[str, ...]) -> float:
    starts = [r.started for k, r in records.items() if k.startswith(prefixes) and r.started]
    assert starts, f"no step starting with {prefixes} ran"
    return min(starts)


def test_a_failover_with_dc1_killed_waits_for_its_ticket_before_dc2_is_writable(
    cluster: Cluster, controllers: None, tmp_path: Path
) -> None:
    topo = cluster.topology
    ttl, drift = topo.ticket_ttl, topo.policy.clock_drift
    # No ticket before this change: dc1's controller creates it for the active site.
    _renewed_by(cluster, "dc1")
    cluster.lab.ok("kill-site", "dc1")  # its controller dies with it: renewals stop
    last = _ticket(cluster)
    assert last is not None and last["holder"] == "dc1"
    audit = tmp_path / "audit.jsonl"

    done = cluster.sitectl(
        "failover", "--to", "dc2", "--yes", "--json", SITECTL_AUDIT_LOG=str(audit)
    )

    assert done.returncode == 0, done.stderr + done.stdout
    outcome = json.loads(done.stdout)
    records = _records(cluster, outcome["id"])
    wait = records["fence/wait/dc1"]
    assert wait.status is StepStatus.DONE
    passes_at = last["renewed_at"] + ttl + drift
    (audited,) = _audit(audit, "fence.wait")
    assert audited["renewed_at"] == last["renewed_at"], "a killed dc1 renewed no more"
    assert audited["passes_at"] == pytest.approx(passes_at)
    assert (
        "dc1's stop steps did not succeed: waiting until dc1's ticket has expired"
        in (audited["detail"])
    )
    # Nothing at dc2 became writable before the bound: not the break, the mounts, the
    # DNS promotion or updates.
    first_writable = _started(records, ("break-mirrors/", "mount/dc2/", "dns/"))
    assert wait.finished is not None and wait.finished >= passes_at
    assert first_writable >= passes_at, (first_writable, passes_at)
    # The operation actually waited (it started well before the bound).
    assert outcome["steps"][0]["status"] == "done"
    assert min(r.started for r in records.values() if r.started) < passes_at - 2
    # The ticket was granted to dc2 before its application started, at the operation's
    # epoch, and dc2's controller renews it.
    grant = records["ticket/grant/dc2"]
    assert grant.finished is not None
    assert grant.finished <= _started(records, ("start-services/dc2/",))
    ticket = _renewed_by(cluster, "dc2")
    assert ticket["epoch"] == outcome["epoch"] and ticket["revoked_at"] is None


def test_a_switchover_releases_and_grants_the_ticket_and_a_grant_by_hand_is_audited(
    cluster: Cluster, controllers: None, tmp_path: Path
) -> None:
    _renewed_by(cluster, "dc1")
    audit = tmp_path / "audit.jsonl"

    outcome = cluster.ok("switchover", "--to", "dc2", "--yes", SITECTL_AUDIT_LOG=str(audit))

    records = _records(cluster, outcome["id"])
    release, grant = records["ticket/release/dc1"], records["ticket/grant/dc2"]
    assert release.status is grant.status is StepStatus.DONE
    stops = [r.finished for k, r in records.items() if k.startswith("disable-application/dc1/")]
    assert release.started is not None and release.started >= max(f or 0 for f in stops)
    assert grant.finished is not None
    assert grant.finished <= _started(records, ("start-services/dc2/",))
    assert [e["site"] for e in _audit(audit, "ticket.released")] == ["dc1"]
    assert [e["site"] for e in _audit(audit, "ticket.granted")] == ["dc2"]
    ticket = _renewed_by(cluster, "dc2")
    assert ticket["epoch"] == outcome["epoch"]

    # The start gate, as the CLI and as the lean module the hosts run: the same words.
    holder = cluster.sitectl("ticket", "check", "dc2")
    assert (holder.returncode, holder.stdout.strip()) == (
        0,
        "dc2 may start: it holds the site ticket",
    )
    loser = cluster.sitectl("ticket", "check", "dc1")
    assert loser.returncode == 4 and loser.stderr.startswith("dc1 may not start: "), loser.stderr
    lean = subprocess.run(
        [sys.executable, "-m", "orchestrator.startgate", "dc1", "-c", str(cluster.topology_file)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert (lean.returncode, lean.stderr) == (4, loser.stderr), lean.stderr

    # By hand: a live ticket is not moved without --force, in one line, and changes nothing.
    refused = cluster.sitectl("ticket", "grant", "dc1", SITECTL_AUDIT_LOG=str(audit))
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "refused: not granting the site ticket to dc1: dc1 does not hold the ticket (dc2 "
        "does) — granting it elsewhere by hand may make two sites active; a failover moves "
        "it, or use --force REASON"
    ]
    assert _ticket(cluster)["holder"] == "dc2"
    reason = "test: re-grant to the holder, CHG-18"
    forced = cluster.sitectl(
        "ticket", "grant", "dc2", "--force", reason, SITECTL_AUDIT_LOG=str(audit)
    )
    assert forced.returncode == 0, forced.stderr
    assert "WARNING: the site ticket was granted to dc2 by force" in forced.stderr
    (audited,) = [e for e in _audit(audit, "ticket.granted") if e.get("forced")]
    assert (audited["site"], audited["reason"], audited["forced"]) == ("dc2", reason, reason)
    assert audited["user"] and audited["ts"] and audited["previous_holder"] == "dc2"
    assert _ticket(cluster)["forced"] == reason
