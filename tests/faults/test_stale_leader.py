"""R4 on the lab: a stale leader's writes are accepted nowhere.

A `sitectl switchover` freezes (SIGSTOP, as a GC pause or a stalled VM would) inside the
DNS step, after its last lease check and right before it changes anything. Its ZooKeeper
session expires; `sitectl resume` takes the lease under a newer epoch and finishes the
move. Then the frozen process is let go (SIGCONT) and carries on exactly where it was:
it must change nothing (not a DNS record, not the zone's fence, not a checkpoint) and
say it stopped.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import pytest

from orchestrator.adapters.dns.fence import fence_name
from orchestrator.audit import AuditLog
from tests.conftest import eventually
from tests.engine.conftest import SITECTL, Cluster

pytestmark = pytest.mark.lab

FROZEN_IN = "dns/lab.internal."



def zone_state(cluster: Cluster) -> dict[str, tuple[int, str]]:
    """`server zone` → (SOA serial, fence TXT) on every server: any accepted update moves
    the serial, so an unchanged serial means nothing was written."""
    found = {}
    for zone in cluster.topology.dns.zones:
        for server in zone.verify_servers:
            answers = []
            for name, rdtype in (
                (zone.name, dns.rdatatype.SOA),
                (fence_name(zone.name), dns.rdatatype.TXT),
            ):
                query = dns.message.make_query(name, rdtype)
                query.flags &= ~dns.flags.RD
                reply = dns.query.udp(query, server.address, port=server.port, timeout=2)
                answers.append([r.to_text() for rrset in reply.answer for r in rrset])
            serial = int(answers[0][0].split()[2])
            found[f"{server} {zone.name}"] = (serial, " ".join(answers[1]))
    return found


def stopped(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "T"


def test_a_frozen_leader_let_go_after_its_successor_changes_nothing(cluster: Cluster) -> None:
    stale = subprocess.Popen(
        [SITECTL, "switchover", "--to", "dc2", "--yes", "--reason", "R4 stale leader"],
        env=cluster.env(SITECTL_FAULT_STOP_BEFORE=FROZEN_IN),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        eventually(lambda: stopped(stale.pid), f"sitectl frozen in {FROZEN_IN}", within=120)
        frozen = cluster.status()["operation"]
        assert frozen["status"] == "running" and FROZEN_IN in frozen["running_steps"]

        # The successor: refused while the frozen holder's session lives, then it takes
        # over under a newer epoch and finishes the move.
        deadline = time.monotonic() + 60
        while (successor := cluster.sitectl("resume")).returncode == 3:
            assert time.monotonic() < deadline, successor.stderr
            time.sleep(0.5)
        assert successor.returncode == 0, successor.stderr
        done = cluster.status()["operation"]
        assert (done["id"], done["status"]) == (frozen["id"], "succeeded")
        assert done["epoch"] > frozen["epoch"]
        cluster.assert_active("dc2")
        before = zone_state(cluster)
        assert all(f"epoch={done['epoch']}" in fence for _, fence in before.values()), before

        stale.send_signal(signal.SIGCONT)
        _, stderr = stale.communicate(timeout=120)
    finally:
        if stale.poll() is None:
            stale.send_signal(signal.SIGCONT)
            stale.kill()
            stale.wait()

    # The old leader went on from its frozen point and was refused: it says so, and the
    # world is exactly as its successor left it.
    assert stale.returncode == 1, stderr
    assert "stopped:" in stderr and "epoch" in stderr, stderr
    time.sleep(2)  # a secondary would have had its NOTIFY by now
    assert zone_state(cluster) == before
    after = cluster.status()["operation"]
    assert (after["status"], after["epoch"]) == ("succeeded", done["epoch"])
    cluster.assert_active("dc2")
    audit = AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
    late = [
        e
        for e in audit
        if e.get("op") == frozen["id"]
        and e.get("epoch") == frozen["epoch"]
        and e["event"] in ("step.done", "operation.succeeded")
        and e.get("step") in (None, FROZEN_IN)
    ]
    assert late == [], f"the stale leader recorded progress: {late}"
