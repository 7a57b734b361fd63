"""Which site an address belongs to, from everything the topology places somewhere.

DNS servers carry no site in the topology; their address usually also appears as a
host, a ZooKeeper node or an endpoint, which does. Unknown addresses are cluster-wide.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from orchestrator.config.model import Topology


def site_map(topo: Topology) -> dict[str, str]:
    places: dict[str, str] = {}
    for host in topo.hosts:
        places.setdefault(host.address, host.site)
    for node in topo.zookeeper.hosts:
        places.setdefault(node.address.rpartition(":")[0] or node.address, node.site)
    if topo.ldap is not None:
        for master in topo.ldap.masters:
            places.setdefault(urlsplit(master.uri).hostname or "", master.site)
    if topo.object_store is not None:
        for endpoint in topo.object_store.endpoints:
            places.setdefault(urlsplit(endpoint.url).hostname or "", endpoint.site)
    places.pop("", None)
    return places


def site_of(topo: Topology, address: str) -> str | None:
    return site_map(topo).get(address)
