"""`sitectl evaluate` on the lab: a fresh lab could move to its standby; a copy of the
topology with a wrong TSIG key, a playbook ansible-playbook refuses or the standby's SSH
host keys changed could not (each alone, then all three), and the evaluation names each
problem. Neither run changes anything the servers keep: zone serials, LDAP contextCSNs,
the cluster's znodes, the mounts."""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rdatatype
import ldap3
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config import Topology, load_topology
from orchestrator.config.model import INSTALLED_PLAYBOOKS
from orchestrator.coordination.client import connect as zk_connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.lab import controllers, hosts, layout, sshd
from orchestrator.lab.ldap import connect as ldap_connect
from tests.conftest import LabHandle, eventually

pytestmark = pytest.mark.lab

EVALUATE_TIMEOUT_S = 300
SITECTL = [sys.executable, "-m", "orchestrator.cli.main"]


def _evaluate(topology: Path, to: str) -> tuple[int, dict[str, Any], str]:
    bin_dir = str(Path(sys.executable).parent)
    done = subprocess.run(
        [*SITECTL, "evaluate", "--to", to, "-c", str(topology), "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"},
        timeout=EVALUATE_TIMEOUT_S,
        check=False,
    )
    try:
        document = json.loads(done.stdout)
    except json.JSONDecodeError:
        document = {}
    return done.returncode, document, done.stdout + done.stderr


# -- the servers' own ledgers --------------------------------------------------------


def _serials(topo: Topology) -> dict[str, int]:
    out = {}
    for zone in topo.dns.zones:
        for server in zone.verify_servers:
            query = dns.message.make_query(zone.name, dns.rdatatype.SOA)
            reply = dns.query.tcp(query, server.address, port=server.port, timeout=3)
            out[f"{zone.name}@{server}"] = int(reply.answer[0][0].serial)
    return out


def _csns(lab: LabHandle, topo: Topology) -> dict[str, tuple[str, ...]]:
    assert topo.ldap is not None
    out = {}
    for master in topo.ldap.masters:
        conn = ldap_connect(master.uri, Path(lab.env["ldap"]["ca_file"]), lab.ldap_password)
        try:
            conn.search(layout.SUFFIX, "(objectClass=*)", ldap3.BASE, attributes=["contextCSN"])
            out[master.uri] = tuple(sorted(conn.entries[0].contextCSN.values))
        finally:
            conn.unbind()
    return out


def _znodes(topo: Topology) -> dict[str, tuple[int, int, int]]:
    """Every znode of the cluster: (mzxid, pzxid, version), which any write changes."""
    root = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster).root
    client = zk_connect(topo, timeout=10)
    try:
        out: dict[str, tuple[int, int, int]] = {}
        todo = [root]
        while todo:
            path = todo.pop()
            stat = client.exists(path)
            if stat is None:
                continue
            out[path] = (stat.mzxid, stat.pzxid, stat.version)
            todo += [f"{path}/{child}" for child in client.get_children(path)]
        return out
    finally:
        client.stop()
        client.close()


def _mounts(lab: LabHandle) -> list[str]:
    text = Path("/proc/mounts").read_text()
    return sorted(line for line in text.splitlines() if str(lab.state_dir) in line)


def _ledgers(lab: LabHandle, topo: Topology) -> dict[str, Any]:
    return {
        "dns": _serials(topo),
        "ldap": _csns(lab, topo),
        "zookeeper": _znodes(topo),
        "mounts": _mounts(lab),
    }


# -- a broken copy of the topology ---------------------------------------------------


def _wrong_key(original: Path, into: Path) -> Path:
    """The key file with the same name and algorithm and another secret."""
    text = original.read_text()
    start = text.index('secret "') + len('secret "')
    end = text.index('"', start)
    other = base64.b64encode(secrets.token_bytes(32)).decode()
    into.write_text(text[:start] + other + text[end:])
    into.chmod(0o600)
    return into


def _changed_host_keys(lab: LabHandle, site: str, into: Path) -> Path:
    """The lab's known_hosts with `site`'s line holding a key that is not its host's."""
    other = into.with_name("not-the-host-key")
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
        check=True,
        capture_output=True,
    )
    kind, key = other.with_suffix(".pub").read_text().split()[:2]
    lines = []
    for line in sshd.known_hosts(lab.state()).read_text().splitlines():
        addresses = line.split()[0].split(",")
        if layout.service_ip(site) in addresses:
            line = f"{line.split()[0]} {kind} {key}"
        lines.append(line + "\n")
    into.write_text("".join(lines))
    into.chmod(0o600)
    return into


FAULTS = ("tsig", "playbook", "ansible")
# A play that parses as one (what loading a topology checks: a missing or unparsable
# playbook is refused before evaluate runs) but that ansible-playbook refuses: found by
# evaluate's syntax check only.
REFUSED_PLAY = "- hosts: all\n  hostz: a typo of hosts\n"


def _broken_topology(
    lab: LabHandle, work: Path, standby: str, faults: tuple[str, ...]
) -> tuple[Path, Path]:
    """A copy of the lab's topology beside it (its secrets are relative paths) with the
    `faults` asked for: `tsig`, the internal zone's key file holding a wrong secret;
    `playbook`, a playbook dir whose volume.yml ansible-playbook refuses; `ansible`, an inventory whose
    known_hosts has another key for `standby`. Returns it and its SSH control dir."""
    work.mkdir()
    topology = Path(lab.env["topology"])
    data = yaml.safe_load(topology.read_text())
    if "tsig" in faults:
        zone = next(z for z in data["dns"]["zones"] if z["name"] == layout.INTERNAL_ZONE)
        key = _wrong_key(lab.state_dir / zone["tsig"]["key_file"], work / "wrong.key")
        zone["tsig"]["key_file"] = str(key)
    if "playbook" in faults:
        playbooks = work / "playbooks"
        shutil.copytree(INSTALLED_PLAYBOOKS, playbooks)
        (playbooks / "volume.yml").write_text(REFUSED_PLAY)
        data["ansible"]["playbook_dir"] = str(playbooks)
    # A control directory of its own: the lab's multiplexed connections were opened
    # with the real keys and would skip the host key check altogether.
    control = Path(tempfile.mkdtemp(prefix="sl-ev-", dir="/tmp"))
    swap = {str(hosts.control_dir(lab.state_dir)): str(control)}
    if "ansible" in faults:
        known = _changed_host_keys(lab, standby, work / "known_hosts")
        swap[str(sshd.known_hosts(lab.state()))] = str(known)
    inventory_text = hosts.path(lab.state_dir).read_text()
    for old, new in swap.items():
        inventory_text = inventory_text.replace(old, new)
    inventory = work / "hosts.yml"
    inventory.write_text(inventory_text)
    data["ansible"]["inventory"] = str(inventory)
    text = yaml.safe_dump(data, sort_keys=False)
    for old, new in swap.items():
        text = text.replace(old, new)
    broken = lab.state_dir / "topology-evaluate-broken.yaml"
    broken.write_text(text)
    broken.chmod(0o644)
    return broken, control


def _close_connections(control: Path) -> None:
    """End the multiplexed SSH connections made under `control` (none should have been:
    every host there refused), then remove it."""
    for socket_path in control.iterdir():
        subprocess.run(
            ["ssh", "-O", "exit", "-o", f"ControlPath={socket_path}", "lab"],
            capture_output=True,
            timeout=10,
            check=False,
        )
    shutil.rmtree(control, ignore_errors=True)


def test_evaluate_passes_on_the_lab_and_names_each_problem_changing_nothing(
    lab: LabHandle, tmp_path: Path
) -> None:
    standby = lab.standby_site()
    topology = Path(lab.env["topology"])
    topo = load_topology(topology)
    before = _ledgers(lab, topo)

    rc, ready, said = _evaluate(topology, standby)
    assert rc == 0, said
    assert ready["ready"] is True and ready["problems"] == [], said
    # The lab's volumes (btrfs) and roles are all checkable: not even a note.
    assert {f["outcome"] for f in ready["findings"]} == {"ok"}, said
    checks = {f["check"] for f in ready["findings"]}
    assert {"ansible", "playbook", "tsig", "mount", "service", "zookeeper", "readiness"} <= checks
    # Every host of the standby a move acts on was reached with its host key.
    reached = {f["subject"] for f in ready["findings"] if f["check"] == "ansible"}
    assert reached == {f"{standby}-mta", f"{standby}-mailbox", f"{standby}-dns"} | {
        n.name for n in layout.ldap_nodes() if n.site == standby
    }

    # Each fault alone, then all three at once: each is named, and nothing else.
    for faults in [*((f,) for f in FAULTS), FAULTS]:
        work = tmp_path / "-".join(faults)
        broken, control = _broken_topology(lab, work, standby, faults)
        try:
            rc, not_ready, said = _evaluate(broken, standby)
        finally:
            broken.unlink()
            _close_connections(control)
        assert rc == 4, said
        assert not_ready["ready"] is False
        by_check: dict[str, list[dict[str, Any]]] = {}
        for p in not_ready["problems"]:
            by_check.setdefault(p["check"], []).append(p)
        assert set(by_check) == set(faults), said
        if "tsig" in faults:
            (tsig,) = by_check["tsig"]
            assert tsig["subject"] == layout.INTERNAL_ZONE, tsig
            assert str(work / "wrong.key") in tsig["reason"], tsig
        if "playbook" in faults:
            (playbook,) = by_check["playbook"]
            assert playbook["subject"] == str(work / "playbooks" / "volume.yml"), playbook
            assert "--syntax-check refuses volume.yml" in playbook["reason"], playbook
        if "ansible" in faults:
            assert {p["subject"] for p in by_check["ansible"]} == reached, said
            assert all("SSH host key does not match" in p["reason"] for p in by_check["ansible"])
        assert not_ready["verdict"].startswith(f"a move to {standby} could not run now:")

    assert _ledgers(lab, topo) == before


# -- the leading controller --------------------------------------------------------


def _plan_samples(site: str) -> dict[str, float]:
    """The sitectl_plan_* samples of `site`'s controller's /metrics, by series."""
    url = f"http://{controllers.listen(site)}/metrics"
    with urllib.request.urlopen(url, timeout=5) as answer:
        text = answer.read().decode()
    return {
        f"{s.name}{json.dumps(dict(sorted(s.labels.items())))}": s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("sitectl_plan")
    }


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_leader_evaluates_the_move_and_says_so_in_metrics_status_and_hooks(
    lab: LabHandle, tmp_path: Path
) -> None:
    """A controller topology that evaluates every 5 s with a playbook dir whose volume.yml
    ansible-playbook refuses: the leader finds the move not ready (plan-not-ready, a problem series);
    once the file is back, ready again (plan-ready, no problem series)."""
    standby = lab.standby_site()
    data = yaml.safe_load(Path(lab.env["topology"]).read_text())
    playbooks = tmp_path / "playbooks"
    shutil.copytree(INSTALLED_PLAYBOOKS, playbooks)
    volume = playbooks / "volume.yml"
    kept = volume.read_bytes()
    volume.write_text(REFUSED_PLAY)
    data["ansible"]["playbook_dir"] = str(playbooks)
    data["policy"]["evaluate_every"] = "5s"
    topology = lab.state_dir / "topology-evaluate-controllers.yaml"
    topology.write_text(yaml.safe_dump(data, sort_keys=False))
    topology.chmod(0o644)
    told = tmp_path / "events.jsonl"
    hook = f"sh -c 'cat >> {told}; echo >> {told}'"
    lab.ok(
        "controllers",
        "up",
        "--topology",
        str(topology),
        "--hook",
        f"plan-not-ready={hook}",
        "--hook",
        f"plan-ready={hook}",
    )
    ready = f'sitectl_plan_ready{{"to": "{standby}"}}'
    problem = f'sitectl_plan_problem{{"check": "playbook", "to": "{standby}"}}'
    try:
        leader = eventually(
            lambda: next((s for s in layout.SITES if ready in _plan_samples(s)), None),
            "a controller publishes an evaluation",
            within=90,
        )
        seen = _plan_samples(leader)
        assert seen[ready] == 0.0 and seen[problem] == 1.0, seen
        # Only the leader evaluates.
        assert all(ready not in _plan_samples(s) for s in layout.SITES if s != leader)
        eventually(lambda: _events(told), "the plan-not-ready hook", within=30)
        (first,) = _events(told)
        assert first["event"] == "plan-not-ready" and first["to_site"] == standby, first
        assert [p["check"] for p in first["problems"]] == ["playbook"], first

        volume.write_bytes(kept)
        eventually(lambda: _plan_samples(leader).get(ready) == 1.0, "ready again", within=60)
        assert problem not in _plan_samples(leader)
        eventually(lambda: len(_events(told)) == 2, "the plan-ready hook", within=30)
        assert _events(told)[1]["event"] == "plan-ready"

        status = subprocess.run(
            [*SITECTL, "status", "-c", str(topology), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        recorded = json.loads(status.stdout)["evaluation"]
        assert recorded["to_site"] == standby and recorded["ready"] is True, recorded
    finally:
        lab.ok("controllers", "down")
        topology.unlink()
