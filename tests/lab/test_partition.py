"""WAN faults on the namespace lab, seen by real clients in each site and in ops.

Invariants a user would check: a site cut off from the others keeps serving its own
local clients (SMTP, IMAP, DNS, LDAP answer inside it) while nobody outside reaches any
of its addresses; ZooKeeper's node there loses quorum while the majority keeps it; a
single cut link or a one-way cut affects only what it names; after `heal-network`
everything answers again.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.lab import layout, links
from tests.conftest import LabHandle, eventually
from tests.lab import reach

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def servers(site: str, active: bool) -> list[str]:
    """Every server address of `site`, as probe targets (the application only if active)."""
    ip = layout.service_ip(site)
    targets = [f"dns@{ip}:{layout.DNS_PORT}", f"tcp@{ip}:{layout.SSH_PORT}"]
    if site in layout.DATACENTERS:
        targets += [
            f"tcp@{node.ip}:{layout.LDAP_PORT}" for node in layout.ldap_nodes() if node.site == site
        ]
        targets.append(f"tcp@{layout.site_ip(site, layout.S3_HOST)}:{layout.S3_PORT}")
    if active:
        targets += [f"smtp@{ip}:{layout.SMTP_PORT}", f"imap@{ip}:{layout.IMAP_PORT}"]
    return targets


def zk(site: str) -> str:
    return f"zk@{layout.service_ip(site)}:{layout.ZK_CLIENT_PORT}"


def seen_from(lab: LabHandle, where: str, targets: list[str]) -> dict[str, str]:
    """What a client in `where` (a site, or "ops": this process) gets from each target."""
    if where == layout.OPS:
        return {t: reach.probe(t) for t in targets}
    # What `lab exec` runs, without a lab CLI process per call: scenarios poll this
    # several times a second while they time a fence, on the same 2 cores.
    probe = [sys.executable, "-m", "tests.lab.reach", *targets]
    result = subprocess.run(
        links.client_argv(lab.state_dir, where, probe),
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"lab exec {where}: {result.stderr}{result.stdout}"
    return json.loads(result.stdout)


def answering(seen: dict[str, str]) -> set[str]:
    return {t for t, outcome in seen.items() if outcome == "ok"}


@pytest.fixture
def healed(lab: LabHandle) -> Iterator[LabHandle]:
    lab.ok("heal-network")
    try:
        yield lab
    finally:
        lab.ok("heal-network")
        # Every server answers from ops again, ZooKeeper's three nodes serving.
        everything = [t for s in layout.SITES for t in servers(s, False)] + [
            zk(s) for s in layout.SITES
        ]
        eventually(
            lambda: answering(seen_from(lab, "ops", everything)) == set(everything),
            "the healed lab answers",
            within=30,
        )


def test_a_partitioned_site_serves_its_own_clients_and_nobody_else(healed: LabHandle) -> None:
    lab = healed
    cut, other = lab.active_site(), lab.standby_site()
    own = servers(cut, active=True)
    out = lab.ok("partition", cut)
    assert f"{cut} <-> {other}" in out and f"{cut} <-> ops" in out and f"{cut} <-> witness" in out
    assert f"{cut} <-> {other}" in lab.ok("status")

    for where in (layout.OPS, other, "witness"):
        seen = seen_from(lab, where, own)
        assert not answering(seen), f"{where} still reaches {sorted(answering(seen))} of {cut}"
    # Inside the site, a user still gets mail, IMAP, DNS and LDAP: the site is alive.
    assert answering(seen_from(lab, cut, own)) == set(own)
    # ZooKeeper: the cut node has lost quorum, the majority (other + witness) keeps it.
    eventually(
        lambda: seen_from(lab, cut, [zk(cut)])[zk(cut)] != "ok", f"{cut}'s ZooKeeper loses quorum"
    )
    majority = [zk(other), zk("witness")]
    eventually(
        lambda: answering(seen_from(lab, "ops", majority)) == set(majority),
        "the majority keeps quorum",
    )

    assert lab.ok("heal-network").strip() == "WAN cuts: none"
    eventually(
        lambda: answering(seen_from(lab, "ops", own)) == set(own), f"{cut} answers ops again"
    )
    eventually(
        lambda: answering(seen_from(lab, other, own)) == set(own), f"{cut} answers {other} again"
    )
    eventually(
        lambda: seen_from(lab, cut, [zk(cut)])[zk(cut)] == "ok", f"{cut}'s ZooKeeper rejoins"
    )


def test_one_cut_link_leaves_every_other_link(healed: LabHandle) -> None:
    lab = healed
    one, two = layout.DATACENTERS
    lab.ok("partition", one, "--from", two)
    assert "WAN cuts: " + f"{one} <-> {two}" in lab.ok("status")
    assert not answering(seen_from(lab, two, servers(one, False)))
    assert not answering(seen_from(lab, one, servers(two, False)))
    # Both still see the witness, and ops sees everyone.
    for site in (one, two):
        assert answering(seen_from(lab, site, servers("witness", False))) == set(
            servers("witness", False)
        )
    everything = servers(one, False) + servers(two, False)
    assert answering(seen_from(lab, "ops", everything)) == set(everything)
    # The ensemble keeps a quorum: the witness sees both and serves, with whichever of
    # dc1/dc2 the leader is in (the node cut off from the leader cannot follow it).
    nodes = [zk(s) for s in layout.SITES]

    def majority_serves() -> bool:
        serving = answering(seen_from(lab, "ops", nodes))
        return zk("witness") in serving and len(serving) >= 2

    eventually(majority_serves, "a quorum with one link cut")

    lab.ok("heal-network", one)
    assert answering(seen_from(lab, two, servers(one, False))) == set(servers(one, False))


def test_a_oneway_cut_drops_only_what_the_site_sends(healed: LabHandle) -> None:
    lab = healed
    cut, other = lab.active_site(), lab.standby_site()
    out = lab.ok("partition", cut, "--oneway")
    assert f"{cut} -> {other}" in out and f"{cut} -> ops" in out and "<->" not in out
    # A connection needs both directions: nobody outside completes one to the site, and
    # the site completes none to the others, though its packets' peers' packets arrive.
    assert not answering(seen_from(lab, layout.OPS, servers(cut, False)))
    assert not answering(seen_from(lab, cut, servers(other, False)))
    # The others between themselves are untouched.
    assert answering(seen_from(lab, other, servers("witness", False))) == set(
        servers("witness", False)
    )


def test_partition_refuses_an_unknown_site_and_changes_nothing(healed: LabHandle) -> None:
    result = healed.cli("partition", "dc9")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "sitectl lab: unknown site 'dc9': the lab's networks are dc1, dc2, witness, ops"
    )
    assert "WAN cuts: none" in healed.ok("status")
