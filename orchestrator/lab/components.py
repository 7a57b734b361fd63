"""The lab's component kinds: how to configure each and how to tell it is ready.

How each is probed until ready is `readiness.probe`.
"""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.lab import bind, layout, ldap, mail, s3, volumes, zookeeper
from orchestrator.lab.state import Component, LabState

Prepare = Callable[[LabState, dict[str, str]], list[Component]]

# Order matters only for readability of `status`; everything starts concurrently.
PREPARERS: tuple[Prepare, ...] = (
    zookeeper.prepare,
    bind.prepare,
    ldap.prepare,
    s3.prepare,
    volumes.prepare,
    mail.prepare,
)


def ports() -> list[tuple[str, str, int, bool]]:
    """(component, address, port, udp) for every socket `lab up` will have bound.

    Taken from the layout alone, so it can be checked before anything is written.
    """
    out: list[tuple[str, str, int, bool]] = []
    for site in layout.SITES:
        out += [(f"{site}-zookeeper", ip, port, False) for ip, port in zookeeper.ports(site)]
        out += [(f"{site}-named", ip, port, udp) for ip, port, udp in bind.ports(site)]
    for node in layout.ldap_nodes():
        out.append((node.name, node.ip, layout.LDAP_PORT, False))
    for site in layout.DATACENTERS:
        out += [(f"{site}-s3", ip, port, False) for ip, port in s3.ports(site)]
    active = layout.ACTIVE_SITE
    out += [(f"{active}-mail", ip, port, False) for ip, port in mail.ports(active)]
    return out


def lo_addresses() -> list[str]:
    """Addresses named must find on an interface: each site's service address."""
    return [layout.service_ip(site) for site in layout.SITES]
