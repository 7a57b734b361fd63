"""What the engine observes before planning: the active site, which sites answer, which
way each mirror points. Read-only and bounded."""

from __future__ import annotations

import contextlib
import socket
from concurrent.futures import ThreadPoolExecutor

from orchestrator.config.model import BtrfsVolume, Topology
from orchestrator.coordination.store import ZkStore
from orchestrator.errors import SitectlError
from orchestrator.plan.observed import MirrorView, ObservedState

REACH_TIMEOUT_S = 2.0


def site_endpoints(topo: Topology, site: str) -> list[tuple[str, int]]:
    """Addresses that answer when the site is alive: its hosts' probe ports, its LDAP
    masters, its S3 endpoint and its ZooKeeper node."""
    found: list[tuple[str, int]] = []
    for name, role in topo.roles.items():
        for host in topo.hosts_of(site, name):
            found += [(host.address, p.port) for p in role.probes]
    if topo.ldap is not None:
        for master in topo.ldap.masters:
            if master.site == site:
                hostport = master.uri.split("://", 1)[1].rstrip("/")
                host, _, port = hostport.rpartition(":")
                found.append((host, int(port or 389)))
    for zk in topo.zookeeper.hosts:
        if zk.site == site:
            host, _, port = zk.address.rpartition(":")
            found.append((host, int(port)))
    return found


def _answers(endpoint: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(endpoint, timeout=REACH_TIMEOUT_S):
            return True
    except OSError:
        return False


def reachable_sites(topo: Topology) -> set[str]:
    """Datacenters with at least one endpoint accepting connections."""
    result = set()
    with ThreadPoolExecutor(max_workers=8) as pool:
        for site in topo.datacenters():
            endpoints = site_endpoints(topo, site)
            if endpoints and any(pool.map(_answers, endpoints)):
                result.add(site)
    return result


def mirror_views(topo: Topology) -> dict[str, MirrorView]:
    """Mirror directions from the drivers sitectl can read; the topology's otherwise."""
    from orchestrator.engine.steps.volumes import btrfs_mirror

    views = {}
    for vol in topo.volumes:
        if isinstance(vol, BtrfsVolume) and vol.mirror_config:
            try:
                status = btrfs_mirror(topo, vol).status()
            except SitectlError:
                continue
            views[vol.name] = MirrorView(status.source, status.destination, status.state.value)
    return views


def observe(topo: Topology, store: ZkStore) -> ObservedState:
    active = store.active_site() or topo.active_site
    unreachable = frozenset(set(topo.datacenters()) - reachable_sites(topo))
    ticket = None
    with contextlib.suppress(SitectlError):  # only the runbook's arithmetic needs it
        ticket = store.ticket()
    return ObservedState(
        active_site=active,
        unreachable_sites=unreachable,
        mirrors=mirror_views(topo),
        ticket=ticket,
    )


def as_recorded(topo: Topology, timeout: float = 3.0) -> Topology:
    """The topology with the active site ZooKeeper records (after a switchover it is no
    longer the file's default). If ZooKeeper does not answer, the file's stands."""
    from orchestrator.coordination.client import connect
    from orchestrator.coordination.paths import ZkPaths

    try:
        client = connect(topo, timeout=timeout)
    except SitectlError:
        return topo
    try:
        store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
        active = store.active_site()
    except SitectlError:
        active = None
    finally:
        client.stop()
        client.close()
    return topo.model_copy(update={"active_site": active}) if active else topo
