"""The leader's canaries on the lab's real slapd, over the connections it keeps between
canaries (controller/ldap_links.py): a master that restarted in between still gets the
very next canary, and a hung one is reported as not answering rather than hanging the
canary loop. Every fault is healed in a `finally`."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass

import ldap3
import pytest

from orchestrator.checks import ldap as ldap_checks
from orchestrator.config import Topology
from orchestrator.config.model import LdapMaster
from orchestrator.controller.canary import write_canaries
from orchestrator.controller.fence import LeaderFence, ldap_canary_dn
from orchestrator.controller.ldap_links import LdapLinks
from orchestrator.controller.leadership import Leadership
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.lab import procs
from orchestrator.lab.state import Component
from tests.conftest import LabHandle, eventually
from tests.engine.conftest import Cluster

pytestmark = pytest.mark.lab

TIMEOUT = 2.0


@pytest.fixture(scope="module")
def cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


@pytest.fixture
def fence(cluster: Cluster) -> Iterator[LeaderFence]:
    """A real leadership term of the lab's election: canaries carry its epoch."""
    topo = cluster.topology
    client = connect(topo, timeout=30)
    try:
        leadership = Leadership(
            client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster), "canary lab test"
        )
        assert leadership.contend(timeout=30) and leadership.epoch is not None
        yield LeaderFence(leadership.epoch)
        leadership.resign()
    finally:
        client.stop()
        client.close()


def canary_text(topo: Topology, master: LdapMaster) -> str:
    conn = ldap_checks.connect(topo, master, TIMEOUT)
    try:
        conn.search(
            ldap_canary_dn(topo, master),
            "(objectClass=*)",
            search_scope=ldap3.BASE,
            attributes=["description"],
        )
        return str(conn.entries[0].entry_attributes_as_dict["description"][0])
    finally:
        ldap_checks.close(conn)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def answers(topo: Topology, master: LdapMaster) -> bool:
    ldap_checks.close(ldap_checks.connect(topo, master, TIMEOUT))
    return True


@dataclass
class Master:
    """The active site's first LDAP master, its slapd and the kept connections the
    canary loop would hold; the site is healed (and slapd let go) after each test."""

    topo: Topology
    site: str
    master: LdapMaster
    slapd: Component
    links: LdapLinks


@pytest.fixture
def active(lab: LabHandle, cluster: Cluster) -> Iterator[Master]:
    topo = cluster.topology
    site = lab.active_site()
    master = next(m for m in topo.ldap.masters if m.site == site)  # type: ignore[union-attr]
    slapd = next(
        c for c in lab.state().components.values() if c.kind == "slapd" and c.address in master.uri
    )
    links = LdapLinks()
    try:
        yield Master(topo, site, master, slapd, links)
    finally:
        procs.signal_group(slapd, signal.SIGCONT)
        links.close()
        lab.ok("heal-site", site)


def test_the_first_canary_after_a_master_restarted_is_written(
    lab: LabHandle, active: Master, fence: LeaderFence
) -> None:
    topo, site, master, links = active.topo, active.site, active.master, active.links
    assert write_canaries(topo, site, TIMEOUT, fence, links) == []
    procs.signal_group(active.slapd, signal.SIGKILL)  # the kept connection dies with it
    lab.ok("heal-site", site)
    eventually(lambda: answers(topo, master), f"{master.uri} answers again")
    before = canary_text(topo, master)  # "sitectl canary <UTC time to the second>"
    eventually(lambda: f"sitectl canary {utc_now()}" != before, "the clock's next second")
    assert write_canaries(topo, site, TIMEOUT, fence, links) == []
    assert canary_text(topo, master) > before


def test_a_hung_master_is_reported_not_waited_for(active: Master, fence: LeaderFence) -> None:
    topo, site, master, links = active.topo, active.site, active.master, active.links
    assert write_canaries(topo, site, TIMEOUT, fence, links) == []
    procs.signal_group(active.slapd, signal.SIGSTOP)
    assert procs.wait_stopped(active.slapd, time.monotonic() + 10)  # SIGSTOP is asynchronous
    said = write_canaries(topo, site, TIMEOUT, fence, links)
    assert said == [
        f"LDAP canary on {master.uri}: accepted the connection but did not "
        f"answer within {TIMEOUT:g} s (hung?)"
    ]
