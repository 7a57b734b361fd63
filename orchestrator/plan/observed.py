"""What the planner knows of the world: which site is active, which sites answer, and
which way each volume mirrors. The engine fills it from ZooKeeper and the probes; with
nothing observed, the topology's defaults stand in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.config.model import Topology
from orchestrator.coordination.ticket import Ticket

MirrorState = Literal["mirrored", "quiesced", "broken", "unknown"]


@dataclass(frozen=True)
class MirrorView:
    source: str
    destination: str
    state: MirrorState = "mirrored"


@dataclass(frozen=True)
class ObservedState:
    active_site: str
    unreachable_sites: frozenset[str] = frozenset()
    mirrors: Mapping[str, MirrorView] = field(default_factory=dict)
    # The site ticket as read, for the runbook's fence/wait arithmetic; never planned on
    # (a resume replans without it and must find the same steps).
    ticket: Ticket | None = None

    def reachable(self, site: str) -> bool:
        return site not in self.unreachable_sites

    def mirror(self, topo: Topology, volume: str) -> MirrorView:
        if volume in self.mirrors:
            return self.mirrors[volume]
        for vol in topo.volumes:
            if vol.name == volume:
                return MirrorView(vol.mirror.source, vol.mirror.destination)
        raise KeyError(volume)


def assumed_state(topo: Topology, unreachable: frozenset[str] = frozenset()) -> ObservedState:
    """The state the topology file describes, for planning without live observation."""
    return ObservedState(active_site=topo.active_site, unreachable_sites=unreachable)
