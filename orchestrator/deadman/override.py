"""The lone survivor's override, sent to its site's dead-man agents (an adapter: UDP).

With no ZooKeeper quorum anywhere nothing can write a ticket, so the operator's
`sitectl ticket grant SITE --force REASON --no-quorum` goes straight to the agents that
fenced the site: a signed feed carrying the reason, sent until each agent acknowledges
it (or the wait ends). An agent that took it restores the site and stops fencing it on
silence until the cluster decides again.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.adapters.secrets import read_secret
from orchestrator.config.model import Topology
from orchestrator.deadman.feed import BadFeed, Feed, decode_ack, encode
from orchestrator.deadman.feeder import agent_addresses

RESEND = 0.5  # UDP: a lost datagram is sent again


@dataclass(frozen=True)
class OverrideResult:
    site: str
    acknowledged: tuple[str, ...]  # "address:port" of each agent that took it
    silent: tuple[str, ...]  # those that did not answer in time

    def sentence(self) -> str:
        took = ", ".join(self.acknowledged) or "none"
        said = f"{len(self.acknowledged)} of {self.total} dead-man agents of {self.site} took "
        said += f"the override ({took})"
        if self.silent:
            said += f"; no answer from {', '.join(self.silent)}"
        return said

    @property
    def total(self) -> int:
        return len(self.acknowledged) + len(self.silent)


def send_override(
    topo: Topology,
    site: str,
    reason: str,
    wait: float = 5.0,
    clock: Callable[[], int] = time.time_ns,
) -> OverrideResult:
    """Send the override to every agent of `site`; which of them acknowledged it."""
    assert topo.deadman is not None
    key = read_secret(topo.deadman.key, topo.base_dir).reveal().strip().encode()
    feed = Feed(site, True, clock(), topo.fence_after, override=reason)
    datagram = encode(feed, key)
    targets = {
        f"{address}:{port}": (address, port) for address, port in agent_addresses(topo, site)
    }
    took: set[str] = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        deadline = time.monotonic() + wait
        while len(took) < len(targets) and time.monotonic() < deadline:
            for name, target in targets.items():
                if name not in took:
                    # Unreachable now: sent again until the wait ends.
                    with contextlib.suppress(OSError):
                        sock.sendto(datagram, target)
            took |= _acks(
                sock, key, site, feed.seq, targets, min(RESEND, deadline - time.monotonic())
            )
    silent = tuple(sorted(set(targets) - took))
    return OverrideResult(site, tuple(sorted(took)), silent)


def _acks(
    sock: socket.socket,
    key: bytes,
    site: str,
    seq: int,
    targets: dict[str, tuple[str, int]],
    within: float,
) -> set[str]:
    """The agents that acknowledged `seq` within `within` seconds."""
    senders = {target: name for name, target in targets.items()}
    took: set[str] = set()
    deadline = time.monotonic() + max(0.0, within)
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            datagram, sender = sock.recvfrom(4096)
        except (TimeoutError, OSError):
            break
        try:
            ack = decode_ack(datagram, key)
        except BadFeed:
            continue
        name = senders.get(sender)
        if name is not None and ack.site == site and ack.seq == seq:
            took.add(name)
    return took
