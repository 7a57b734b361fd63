"""The controller's side: feed the agents of its own site (fire and forget, UDP).

A feed says whether the site holds the right to serve. The controller feeds after each
confirmation and at no other time: a controller that cannot confirm (no ZooKeeper
quorum, a hung process, a dead one) simply stops feeding, and that silence is what the
agents act on. UDP so that a feed never blocks the controller.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable

from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import Topology
from orchestrator.deadman.actions import needs_agent
from orchestrator.deadman.feed import Feed, encode

log = logging.getLogger("sitectl.deadman")


def agent_addresses(topo: Topology, site: str) -> list[tuple[str, int]]:
    """Where the site's agents listen: each address of a host at the site that a fence
    touches."""
    if topo.deadman is None:
        return []
    addresses = sorted({h.address for h in topo.hosts if h.site == site and needs_agent(topo, h)})
    return [(address, topo.deadman.port) for address in addresses]


class Feeder:
    def __init__(self, topo: Topology, site: str, clock: Callable[[], int] = time.time_ns) -> None:
        assert topo.deadman is not None
        self.site = site
        self.fence_after = topo.fence_after
        self.targets = agent_addresses(topo, site)
        self.key = read_secret(topo.deadman.key, topo.base_dir).reveal().strip().encode()
        self.clock = clock
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._failing: set[tuple[str, int]] = set()

    def feed(self, holder: bool, fence: bool = False) -> None:
        """`holder`: the site holds the ticket; `fence`: it lost it to a failover."""
        feed = Feed(self.site, holder, self.clock(), self.fence_after, fence)
        datagram = encode(feed, self.key)
        for target in self.targets:
            try:
                self.sock.sendto(datagram, target)
            except OSError as exc:
                if target not in self._failing:
                    log.warning("could not feed the dead-man agent at %s:%d: %s", *target, exc)
                self._failing.add(target)
            else:
                self._failing.discard(target)

    def close(self) -> None:
        self.sock.close()
