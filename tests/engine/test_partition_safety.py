"""Never two active sites (issue 18) on the namespace lab, with real clients. (In the
engine's lane of scripts/test: its invariants are orderings with seconds of margin, not
the 1 s probe timings the controller scenarios run alone for.)

A partition isolates the active site dc1 while it serves: a client inside dc1 and a
client inside dc2 each send numbered mail every 100 ms to their own site's MTA and log
each acknowledgement with its time. The controllers (with automatic promotion) and the
dead-man agents run as `sitectl lab controllers up` runs them. Invariants:
- dc2 is promoted, and the last message dc1 acknowledged comes before the first one
  dc2 acknowledged: no instant where both sites accept writes;
- once dc2 serves, no DNS server answers dc1's address: dc2's and the witness's answer
  dc2's, dc1's own (cut off) answers nothing;
- after `heal-network` and `reprotect`, every message either site acknowledged is
  readable at dc2 (over IMAP), once: what dc1 took after its mirror's last transfer is
  salvaged before the mirror turns.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from orchestrator.config import load_topology
from orchestrator.lab import bind, layout
from tests.conftest import LabHandle
from tests.controller.conftest import wait_for
from tests.controller.scenarios import (
    LabControllers,
    automatic_failover_succeeded,
    automatic_operations,
    canaries_settled,
    controller_topology,
)
from tests.engine.conftest import Cluster
from tests.engine.test_salvage import message_ids
from tests.lab.test_deadman import agent_log
from tests.lab.test_partition import answering, seen_from

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
LAB_EXEC = (sys.executable, "-m", "orchestrator.lab", "exec")
RECIPIENT = f"{layout.MAIL_USER}@{layout.MAIL_DOMAIN}"


@pytest.fixture(scope="module")
def cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


@pytest.fixture
def guarded(cluster: Cluster) -> Iterator[LabControllers]:
    """Controllers with automatic promotion and the dead-man agents, dc1 active; a new
    lab afterwards when the scenario moved or fenced anything."""
    if not cluster.at_home():
        cluster.lab.renew()
    topology = controller_topology(cluster, "partition-safety", ldap="30s")
    cluster.lab.ok("controllers", "up", "--topology", str(topology))
    controllers = LabControllers(topology, cluster.lab.state_dir)
    try:
        wait_for(
            lambda: any(
                controllers.status(s).get("decision")
                == "dc1 up from 3 of 3 vantage points; nothing to do"
                for s in controllers.leaders()
            ),
            "the leader decides on all three views",
            within=60,
        )
        yield controllers
    finally:
        cluster.lab.ok("heal-network")
        cluster.lab.ok("controllers", "down")
        # A failover or a fence changes what the next scenario starts from; a cut that
        # moved nothing does not (and a new lab costs ~10 s of the CI budget).
        if not cluster.at_home() or "fencing" in agent_log(cluster.lab, "dc1"):
            cluster.lab.renew()


class Writer:
    """tests/lab/writer.py inside `site`, sending to that site's MTA."""

    def __init__(self, cluster: Cluster, site: str, out: Path) -> None:
        lab = cluster.lab
        self.out = out
        server = f"{layout.service_ip(site)}:{layout.SMTP_PORT}"
        argv = [sys.executable, "-m", "tests.lab.writer", "--server", server]
        argv += ["--to", RECIPIENT, "--tag", site, "--every", "0.1", "--out", str(out)]
        self.proc = subprocess.Popen(
            [*LAB_EXEC, "--state-dir", str(lab.state_dir), site, "--", *argv],
            cwd=REPO,
            env=cluster.env(PYTHONPATH=str(REPO)),
            start_new_session=True,
        )

    def acks(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines() if line]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=15)


def answers(server: str, name: str) -> set[str]:
    query = dns.message.make_query(name, "A")
    reply = dns.query.udp(query, server, port=layout.DNS_PORT, timeout=2)
    return {item.address for rrset in reply.answer for item in rrset}


@pytest.mark.parametrize(
    "cut",
    [
        ("dc1",),
        # Only what dc1 sends is dropped: dc1 cannot renew (TCP needs both ways) and the
        # others see it down, so it goes as a full partition does: nothing unsafe.
        ("dc1", "--oneway"),
    ],
    ids=["full", "oneway"],
)
def test_a_partitioned_active_site_and_the_promoted_one_never_both_take_mail(
    cluster: Cluster, guarded: LabControllers, tmp_path: Path, cut: tuple[str, ...]
) -> None:
    lab = cluster.lab
    canaries_settled(guarded)
    writers = {s: Writer(cluster, s, tmp_path / f"{s}.jsonl") for s in layout.DATACENTERS}
    try:
        wait_for(lambda: len(writers["dc1"].acks()) >= 5, "dc1 takes mail")
        assert not writers["dc2"].acks(), "the standby took mail before the partition"
        cut_at = time.time()
        lab.ok("partition", *cut)
        wait_for(
            lambda: len(writers["dc2"].acks()) >= 10, "dc2 takes mail after promotion", within=180
        )
    finally:
        for writer in writers.values():
            writer.stop()
    dc1, dc2 = writers["dc1"].acks(), writers["dc2"].acks()
    last_dc1 = max(a["acked_at"] for a in dc1)
    first_dc2 = min(a["acked_at"] for a in dc2)
    print(  # the partition figures, for BENCHMARKS.md
        f"partition → dc1 stopped taking mail: {last_dc1 - cut_at:.1f} s; "
        f"partition → dc2 taking mail: {first_dc2 - cut_at:.1f} s"
    )
    assert last_dc1 < first_dc2, (
        f"dc1 acknowledged message {max(dc1, key=lambda a: a['acked_at'])['n']} "
        f"{last_dc1 - first_dc2:.2f} s after dc2 acknowledged its first"
    )
    assert cluster.status()["active_site"] == "dc2"
    dc2_ip = layout.service_ip("dc2")
    for zone in bind.ZONES:
        name = f"{layout.MAIL_RECORD}.{zone.name}"
        for site in (s for s in zone.sites() if s != "dc1"):
            server = layout.service_ip(site)
            wait_for(
                lambda s=server, n=name: answers(s, n) == {dc2_ip}, f"{site} sends {name} to dc2"
            )
    own = f"{layout.service_ip('dc1')}:{layout.DNS_PORT}"
    zones = (layout.INTERNAL_ZONE, layout.EXTERNAL_ZONE)
    inside = seen_from(lab, "dc1", [f"dns:{layout.MAIL_RECORD}.{z}@{own}" for z in zones])
    assert not answering(inside), f"dc1's own DNS server still answers: {inside}"

    # Healed, and reprotected: what dc1 acknowledged after its mirror's last transfer is
    # salvaged first, so every message either site acknowledged is readable at dc2, once.
    lab.ok("heal-network")
    reprotected = cluster.ok("reprotect", "--yes", "--reason", "scenario: after the partition")
    assert reprotected["status"] == "succeeded", reprotected["message"]
    salvaged = {s["id"]: s["detail"] for s in reprotected["steps"]}["salvage/mail/mailstore"]
    print(f"after the partition: {salvaged}")
    at_dc2 = message_ids(cluster, "dc2")
    acked = [a["message_id"] for a in dc1 + dc2]
    missing = [m for m in acked if at_dc2[m] == 0]
    assert not missing, f"{len(missing)} acknowledged message(s) not at dc2: {missing[:5]}"
    twice = [m for m in acked if at_dc2[m] > 1]
    assert not twice, f"at dc2 more than once: {twice[:5]}"


def test_with_its_controller_dead_a_partitioned_dc1_is_still_fenced_before_dc2_serves(
    cluster: Cluster, guarded: LabControllers, tmp_path: Path
) -> None:
    """dc1's controller killed, then dc1 cut off: nothing on dc1 can renew or feed, so its
    dead-man agent alone must stop it, before the failover's wait lets dc2 serve."""
    lab = cluster.lab
    canaries_settled(guarded)
    writers = {s: Writer(cluster, s, tmp_path / f"{s}.jsonl") for s in layout.DATACENTERS}
    try:
        wait_for(lambda: len(writers["dc1"].acks()) >= 5, "dc1 takes mail")
        controller = lab.state().components["dc1-controller"]
        assert controller.pid is not None
        os.kill(controller.pid, signal.SIGKILL)
        lab.ok("partition", "dc1")
        wait_for(
            lambda: len(writers["dc2"].acks()) >= 5, "dc2 takes mail after promotion", within=180
        )
    finally:
        for writer in writers.values():
            writer.stop()
    dc1, dc2 = writers["dc1"].acks(), writers["dc2"].acks()
    last_dc1, first_dc2 = max(a["acked_at"] for a in dc1), min(a["acked_at"] for a in dc2)
    assert last_dc1 < first_dc2, f"dc1 acknowledged {last_dc1 - first_dc2:.2f} s after dc2"
    assert "fencing dc1" in agent_log(lab, "dc1")
    assert cluster.status()["active_site"] == "dc2"


@pytest.mark.parametrize("other", ["dc2", "witness"])
def test_a_cut_that_leaves_the_active_site_a_majority_moves_nothing(
    cluster: Cluster, guarded: LabControllers, tmp_path: Path, other: str
) -> None:
    """dc1 cut from one other site only: it still renews its ticket through the
    ZooKeeper majority it is in, so nothing promotes dc2 and nothing fences dc1."""
    lab = cluster.lab
    # Settled as for a promotion: a readiness gate holding a wrong promotion for want of
    # canaries must not be what keeps this scenario green.
    canaries_settled(guarded)
    before = len(automatic_operations(cluster))
    writer = Writer(cluster, "dc1", tmp_path / "dc1.jsonl")
    try:
        wait_for(lambda: len(writer.acks()) >= 5, "dc1 takes mail")
        cut_at = time.time()
        lab.ok("partition", "dc1", "--from", other)
        topo = load_topology(guarded.topology)
        # Longer than detection and the dead-man agent's bound together.
        time.sleep(
            topo.policy.consecutive_failures * topo.policy.probe_interval + topo.fence_after + 4
        )
    finally:
        writer.stop()
    assert len(automatic_operations(cluster)) == before, "a failover started"
    assert cluster.status()["active_site"] == "dc1"
    late = [a for a in writer.acks() if a["acked_at"] > cut_at + topo.fence_after + 2]
    assert late, "dc1 stopped taking mail while it kept a majority"


def test_a_site_back_after_losing_a_failover_takes_no_mail_and_sends_nobody_to_itself(
    cluster: Cluster, guarded: LabControllers, tmp_path: Path
) -> None:
    """`heal-site` brings dc1 back as a real site comes back after a power loss: every
    process that ran, its application included (which its start gate refuses), its DNS
    server with the zone data it had. Its controller reads that dc1 lost the ticket to
    a failover and has its dead-man agent fence it."""
    lab = cluster.lab
    canaries_settled(guarded)
    lab.ok("kill-site", "dc1")
    automatic_failover_succeeded(cluster)
    writer = Writer(cluster, "dc1", tmp_path / "dc1.jsonl")
    try:
        healing = time.monotonic()
        healed = lab.ok("heal-site", "dc1")
        # Every dc1 process is back and ready, its controller and dead-man agent too. What
        # came before (its servers starting, named with the zone data it had) is the
        # lab's restart and takes what the machine gives it; from here on it is sitectl.
        back = time.monotonic()
        assert "the application stays down: dc1 may not start: dc1 does not hold the site " in (
            healed
        )
        dc1_ip, dns_server = layout.service_ip("dc1"), layout.service_ip("dc1")
        names = [f"{layout.MAIL_RECORD}.{zone.name}" for zone in bind.served_zones("dc1")]

        def sends_nobody_to_dc1() -> bool:
            try:
                return all(dc1_ip not in answers(dns_server, name) for name in names)
            except OSError:
                return False

        wait_for(sends_nobody_to_dc1, "dc1's DNS server no longer answers dc1", within=30)
        fenced = time.monotonic()
        print(
            f"heal → dc1's DNS server no longer answers dc1: {fenced - healing:.1f} s "
            f"({fenced - back:.1f} s after every dc1 process was ready)"
        )
        time.sleep(3)  # the probing client goes on a while after the fence
    finally:
        writer.stop()
    assert not writer.acks(), f"dc1 took mail after it came back: {writer.acks()[:3]}"
    assert fenced - back <= 10, (
        f"dc1's DNS server answered dc1 for {fenced - back:.1f} s after dc1's controller and "
        f"agent were back ({fenced - healing:.1f} s after the heal began)"
    )


@pytest.fixture
def manual(cluster: Cluster) -> Iterator[None]:
    """The lab's own controllers (automatic promotion off) and dead-man agents, dc1
    active and renewing its ticket; a new lab afterwards (the scenario moves the service)."""
    if not cluster.at_home():
        cluster.lab.renew()
    cluster.lab.ok("controllers", "up")
    try:
        wait_for(
            lambda: "dc1 was confirmed" in agent_log(cluster.lab, "dc1"),
            "dc1's agent is fed",
            within=60,
        )
        # The failover's readiness gate bounds the loss by the newest canary dc2 holds.
        canaries_settled(LabControllers(cluster.topology_file, cluster.lab.state_dir))
        yield
    finally:
        cluster.lab.ok("heal-network")
        cluster.lab.ok("controllers", "down")
        cluster.lab.renew()


# Nobody reaches dc1, the operator neither: the failover waits out dc1's ticket. On a
# busy machine its pre-flight may outlast the ticket (ttl + drift, 11 s here): the wait
# then finds it expired already. Either way no write at dc2 before last renewal + ttl +
# drift, which the audit record's figures let the test check.
WAITED_OUT = (
    "dc1's stop steps did not succeed: waiting until dc1's ticket has expired",
    "dc1's ticket has expired: last renewal",
)


@pytest.mark.parametrize(
    ("cut", "said"),
    [
        (("dc1",), WAITED_OUT),
        # dc1 cut from dc2 and the witness only: the operator's failover stops it itself.
        (("dc1", "--from", "dc2,witness"), ("dc1's stop steps succeeded",)),
    ],
    ids=["unreachable", "reachable-from-ops"],
)
def test_a_manual_failover_while_dc1_is_isolated_waits_the_bound_or_fences_it(
    cluster: Cluster, manual: None, tmp_path: Path, cut: tuple[str, ...], said: tuple[str, ...]
) -> None:
    lab = cluster.lab
    writers = {s: Writer(cluster, s, tmp_path / f"{s}.jsonl") for s in layout.DATACENTERS}
    audit = tmp_path / "audit.jsonl"
    try:
        wait_for(lambda: len(writers["dc1"].acks()) >= 5, "dc1 takes mail")
        lab.ok("partition", *cut)
        # As an operator runs it: its sentences on stderr say what it waits for. What it
        # may lose is not this scenario's question (the gate's own scenarios ask it): with
        # dc1 cut off, the gate bounds LDAP's loss by the age of the newest canary dc2
        # holds, a second or two after the cut on a quiet machine but over the lab's 10 s
        # limit when a loaded one delays the canaries, and a refusal would end the
        # scenario before the fence it is about.
        failover = cluster.sitectl(
            "failover",
            "--to",
            "dc2",
            "--yes",
            "--accept-data-loss",
            "scenario: the fence wait, not the loss estimate",
            SITECTL_AUDIT_LOG=str(audit),
        )
        assert failover.returncode == 0, failover.stderr + failover.stdout
        wait_for(lambda: len(writers["dc2"].acks()) >= 5, "dc2 takes mail", within=60)
    finally:
        for writer in writers.values():
            writer.stop()
    told = " ".join(failover.stderr.split())  # unwrapped: rich wraps at 80 columns
    assert any(f"fence/wait dc1: {sentence}" in told for sentence in said), failover.stderr
    (waited,) = [
        json.loads(line) for line in audit.read_text().splitlines() if '"fence.wait"' in line
    ]
    assert any(sentence in waited["detail"] for sentence in said), waited
    dc1, dc2 = writers["dc1"].acks(), writers["dc2"].acks()
    last_dc1 = max(a["acked_at"] for a in dc1)
    first_dc2 = min(a["acked_at"] for a in dc2)
    assert last_dc1 < first_dc2, f"dc1 acknowledged {last_dc1 - first_dc2:.2f} s after dc2"
    if said == WAITED_OUT:  # dc1 was never stopped: dc2 writes only after its ticket's end
        expired = waited["renewed_at"] + waited["ttl"] + waited["clock_drift"]
        if waited["passes_at"] is not None:
            assert waited["passes_at"] >= expired, waited
        assert first_dc2 >= expired, (
            f"dc2 took mail {expired - first_dc2:.2f} s before dc1's ticket expired"
        )
