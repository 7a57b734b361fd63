"""R4 on the lab: a stale leader's writes are accepted nowhere.

An operation's: a `sitectl switchover` freezes (SIGSTOP, as a GC pause or a stalled VM would) inside the
DNS step, after its last lease check and right before it changes anything. Its ZooKeeper
session expires; `sitectl resume` takes the lease under a newer epoch and finishes the
move. Then the frozen process is let go (SIGCONT) and carries on exactly where it was:
it must change nothing (not a DNS record, not the zone's fence, not a checkpoint) and
say it stopped.

A controller's: the leader's canaries (LDAP entries, S3 objects) carry its election
epoch; once its successor has stamped its own, the servers refuse every canary of the
old one, whichever site it believes active.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rdatatype
import ldap3
import pytest

from orchestrator.adapters.dns.fence import fence_name
from orchestrator.adapters.s3 import s3_client
from orchestrator.audit import AuditLog
from orchestrator.checks import ldap as ldap_checks
from orchestrator.config import Topology
from orchestrator.controller.canary import write_canaries
from orchestrator.controller.fence import LeaderFence, ldap_canary_dn, s3_canary_key
from orchestrator.controller.leadership import Leadership
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.lab import bind
from orchestrator.storage.epochfence import ledger_path
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
        while (successor := cluster.sitectl("resume", "--yes")).returncode == 3:
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


def canary_places(topo: Topology) -> dict[str, str]:
    """Every place a leader's canary can land → what it holds now (each master's
    canary entries with their entryCSN, each endpoint's own canary object's version):
    any accepted write changes it."""
    assert topo.ldap is not None and topo.object_store is not None
    found = {}
    for master in topo.ldap.masters:
        conn = ldap_checks.connect(topo, master, 5)
        try:
            for writer in topo.ldap.masters:
                dn = ldap_canary_dn(topo, writer)
                assert conn.search(
                    dn,
                    "(objectClass=*)",
                    search_scope=ldap3.BASE,
                    attributes=["entryCSN", "ou", "description"],
                ), conn.result
                values = conn.entries[0].entry_attributes_as_dict
                found[f"{master.uri} {dn}"] = repr(sorted(values.items()))
        finally:
            ldap_checks.close(conn)
    for endpoint in topo.object_store.endpoints:
        for bucket in (b.name for b in topo.object_store.buckets if b.replicated):
            key = s3_canary_key(endpoint.site)
            head = s3_client(topo, endpoint).head_object(Bucket=bucket, Key=key)
            found[f"{endpoint.url} {bucket}/{key}"] = f"{head['VersionId']} {head['Metadata']}"
    return found


def test_a_deposed_controllers_canaries_are_refused_everywhere(cluster: Cluster) -> None:
    """Two controllers contend in the lab's real election: the first leads and writes
    its canaries; its session ends (as a frozen leader's expires) and the second takes
    over with a higher epoch and stamps it on every canary place. The first, carrying
    on as its canary thread would after SIGCONT, is refused on every LDAP master and at
    every S3 endpoint, stops at the first refusal, and cannot stamp its epoch back."""
    topo = cluster.topology
    assert topo.ldap is not None
    paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
    old_zk, new_zk = connect(topo, timeout=30), connect(topo, timeout=30)
    try:
        old = Leadership(old_zk, paths, "R4 deposed controller")
        assert old.contend(timeout=10) and old.verified()
        old_epoch = old.epoch
        assert old_epoch is not None
        assert write_canaries(topo, "dc1", 5, LeaderFence(old_epoch)) == []

        successor = Leadership(new_zk, paths, "R4 successor")
        assert not successor.contend(timeout=0.5)  # queued behind the leader
        old_zk.stop()  # its election node goes with its session
        assert successor.contend(timeout=10) and successor.verified()
        new_epoch = successor.epoch
        assert new_epoch is not None and new_epoch > old_epoch
        fence = LeaderFence(new_epoch)
        assert fence.stamp_everywhere(topo, 5) == []
        eventually(
            lambda: all(
                f"sitectl-epoch={new_epoch}" in held
                for place, held in canary_places(topo).items()
                if "ldap://" in place
            ),
            "the successor's epoch on every canary entry of every master",
        )
        before = canary_places(topo)

        refusal = f"epoch {new_epoch} holds the fence, we are {old_epoch}"
        for master in topo.ldap.masters:
            alone = topo.model_copy(
                update={
                    "ldap": topo.ldap.model_copy(update={"masters": (master,)}),
                    "object_store": None,
                }
            )
            stale = LeaderFence(old_epoch)
            said = write_canaries(alone, master.site, 5, stale)
            assert said == [f"LDAP canary on {master.uri} refused: {refusal}"]
            assert write_canaries(alone, master.site, 5, stale) == said  # nothing tried again
        for believed_active in ("dc1", "dc2"):
            stale = LeaderFence(old_epoch)
            said = write_canaries(topo.model_copy(update={"ldap": None}), believed_active, 5, stale)
            assert len(said) == 1 and said[0].startswith("object store canary at "), said
            assert said[0].endswith(f"/_sitectl/canary/{believed_active}: {refusal}"), said
        stale = LeaderFence(old_epoch)
        assert stale.stamp_everywhere(topo, 5) == []
        assert " refused: " in stale.deposed and stale.deposed.endswith(refusal), stale.deposed
        assert canary_places(topo) == before

        assert write_canaries(topo, "dc1", 5, fence) == []  # the successor's go through
    finally:
        for client in (old_zk, new_zk):
            client.stop()
            client.close()


def storage_tasks(lab: Path, epoch: int | None = None) -> list[int]:
    """PIDs of the storage CLI processes that change a mirror of the lab in `lab`,
    running on its hosts (any operation's, or one epoch's); a `status` read takes no lock
    and is left out. Only this lab's: in a full run another lane's lab moves its own
    service at the same time, and its tasks come and go on this machine too."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [w.decode(errors="replace") for w in argv if w]
        if "orchestrator.storage" not in words or "--epoch" not in words or "status" in words:
            continue
        if not any(w.startswith(f"{lab}/") or w.startswith(f"{lab.resolve()}/") for w in words):
            continue
        if epoch is None or words[words.index("--epoch") + 1] == str(epoch):
            found.append(int(proc.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children first found, then theirs)."""
    parents: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                stat = (proc / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(proc.name))
    found, queue = [], [pid]
    while queue:
        children = parents.get(queue.pop(0), [])
        found += children
        queue += children
    return found


def mux_master(pid: int) -> bool:
    """An SSH connection master ("ssh: PATH [mux]"), which every run's tasks share."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ssh: ")
    except OSError:
        return False


def fence_epochs_in_journals(cluster: Cluster, zone: str) -> dict[str, list[int]]:
    """The zone's own ledgers: per server's journal, each `_sitectl-fence` value it
    added, in the order the server took the changes (named-journalprint)."""
    (label,) = [z.label for z in bind.ZONES if z.name == zone]
    found: dict[str, list[int]] = {}
    for journal in cluster.lab.state_dir.glob(f"*/named/{label}.*.jnl"):
        printed = subprocess.run(
            ["named-journalprint", str(journal)], capture_output=True, text=True, check=True
        ).stdout
        found[str(journal)] = [
            int(line.split('"epoch=')[1].split('"')[0])
            for line in printed.splitlines()
            if line.startswith("add _sitectl-fence.") and '"epoch=' in line
        ]
    return found


def test_a_storage_task_released_by_a_frozen_leader_never_acts_after_its_successor(
    cluster: Cluster,
) -> None:
    """The leader's playbook has released a storage task to the host, where it waits
    (the host is busy: the test holds the mirror's epoch lock). The leader and that task
    freeze; the host frees up; the successor takes over under a newer epoch and finishes
    the move; then everything is let go. The host's storage ledger and the zone's journal
    never show the older epoch acting after the newer one."""
    (volume,) = cluster.topology.volumes
    lab = cluster.lab.state_dir.absolute()
    config = json.loads(cluster.topology.resolve(volume.mirror_config).read_text())
    state_file = Path(config["state_file"])
    ledger = ledger_path(state_file)
    acted_before = len(ledger.read_text().splitlines()) if ledger.exists() else 0
    busy = os.open(
        state_file.with_name(state_file.name + ".epoch.lock"), os.O_RDWR | os.O_CREAT, 0o600
    )
    fcntl.flock(busy, fcntl.LOCK_EX)
    stale = subprocess.Popen(
        [SITECTL, "switchover", "--to", "dc2", "--yes", "--reason", "R4 stale storage task"],
        env=cluster.env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    released: list[int] = []
    try:
        eventually(lambda: storage_tasks(lab), "a storage task waits on the host", within=120)
        # The leader freezes with everything it started here (ansible-playbook, ssh), so
        # it releases nothing more; then every task already on the host freezes too.
        released = [stale.pid, *(p for p in descendants(stale.pid) if not mux_master(p))]
        for pid in released:
            os.kill(pid, signal.SIGSTOP)
        time.sleep(0.5)
        on_host = storage_tasks(lab)
        assert on_host, "the released task ended before it was frozen"
        for pid in on_host:
            os.kill(pid, signal.SIGSTOP)
        released += on_host
        frozen = cluster.status()["operation"]
        os.close(busy)  # the host is free: only the frozen task still waits to act

        deadline = time.monotonic() + 90
        while (successor := cluster.sitectl("resume", "--yes")).returncode == 3:
            assert time.monotonic() < deadline, successor.stderr
            time.sleep(0.5)
        assert successor.returncode == 0, successor.stderr + successor.stdout
        done = cluster.status()["operation"]
        assert (done["id"], done["status"]) == (frozen["id"], "succeeded")
        assert done["epoch"] > frozen["epoch"]
        cluster.assert_active("dc2")
        before = zone_state(cluster)

        for pid in reversed(released):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        eventually(lambda: not storage_tasks(lab, frozen["epoch"]), "the released task ends", 60)
        _, stderr = stale.communicate(timeout=120)
    finally:
        for pid in released:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        if stale.poll() is None:
            stale.send_signal(signal.SIGCONT)
            stale.kill()
            stale.wait()

    assert stale.returncode == 1, stderr
    acted = [json.loads(line) for line in ledger.read_text().splitlines()[acted_before:]]
    epochs = [entry["epoch"] for entry in acted]
    assert done["epoch"] in epochs, acted
    assert epochs == sorted(epochs), f"an older epoch acted after a newer one: {acted}"
    assert frozen["epoch"] not in epochs, f"the frozen leader's task acted: {acted}"
    time.sleep(2)
    assert zone_state(cluster) == before, "the frozen leader changed DNS"
    journals = {
        path: epochs
        for zone in cluster.topology.dns.zones
        if zone.provider == "rfc2136"
        for path, epochs in fence_epochs_in_journals(cluster, zone.name).items()
    }
    assert any(done["epoch"] in epochs for epochs in journals.values()), journals
    for path, epochs in journals.items():
        assert epochs == sorted(epochs), f"{path}: a fence epoch went back: {epochs}"
    cluster.assert_active("dc2")
