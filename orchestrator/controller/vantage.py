"""A vantage point: probe the sites, keep a streak of consecutive "down" verdicts per site,
publish the report as this controller's ephemeral znode; and, on the leader's side, turn
the published reports into the snapshot's views.

What "down" means: none of the probes of the roles that move with the service (the
application proper: `moves: true`) answers on the site — refused, silent or hung. Roles
that run on both sites at all times (LDAP multi-master) are left out: a hung site's
kernel still accepts their TCP connections, which would make a dead site look merely
degraded. One service failing is not a site failure and is not the controllers'
business; the whole application unreachable from a majority of vantage points is.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.checks import CheckResult, Status, Sweep, application, run_checks
from orchestrator.config.model import Topology
from orchestrator.controller.decision import DEGRADED, DOWN, UP, SiteView, VantageView
from orchestrator.controller.zkstate import Published

SYSTEMS = ("application",)


def service_targets(topo: Topology, site: str) -> frozenset[str]:
    """The check targets of the roles that move with the service, on `site`."""
    moving = [name for name, role in topo.roles.items() if role.moves] or list(topo.roles)
    return frozenset(
        application.target(name, host, p)
        for name in moving
        for host in topo.hosts_of(site, name)
        for p in topo.roles[name].probes
    )


def judge_site(
    results: Sequence[CheckResult], site: str, targets: frozenset[str] | None = None
) -> SiteView:
    """The verdict of one site from one sweep (pure; the streak is added by the Prober).
    `targets`: the results that count (`service_targets`); None: every result."""
    mine = [r for r in results if r.site == site and (targets is None or r.target in targets)]
    if not mine:
        return SiteView(UP, reason="nothing to probe")
    down = [r for r in mine if r.status is Status.DOWN]
    if len(down) == len(mine):
        return SiteView(DOWN, reason="; ".join(r.describe() for r in down))
    not_ok = [r for r in mine if r.status is not Status.OK]
    if not_ok:
        return SiteView(DEGRADED, reason="; ".join(r.describe() for r in not_ok))
    return SiteView(UP)


@dataclass(frozen=True)
class Report:
    vantage: str
    active_site: str
    seq: int
    probed_at: float  # the vantage point's clock; for people, never compared across hosts
    seconds: float  # how long the sweep took
    sites: dict[str, SiteView] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "vantage": self.vantage,
            "active_site": self.active_site,
            "seq": self.seq,
            "probed_at": self.probed_at,
            "seconds": round(self.seconds, 3),
            "sites": {
                name: {"status": v.status, "streak": v.streak, "reason": v.reason}
                for name, v in self.sites.items()
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Report:
        return cls(
            vantage=str(data["vantage"]),
            active_site=str(data["active_site"]),
            seq=int(data["seq"]),
            probed_at=float(data["probed_at"]),
            seconds=float(data.get("seconds", 0.0)),
            sites={
                name: SiteView(str(v["status"]), int(v["streak"]), str(v.get("reason", "")))
                for name, v in data["sites"].items()
            },
        )


Sweeper = Callable[[Topology, float], Sweep]


def application_sweep(topo: Topology, timeout: float) -> Sweep:
    return run_checks(topo, SYSTEMS, timeout=timeout)


class Prober:
    """Runs one sweep per call and remembers, per site, how many sweeps in a row found
    it down. Not thread-safe: one vantage thread owns it."""

    def __init__(
        self,
        topo: Topology,
        vantage: str,
        sweeper: Sweeper = application_sweep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._topo = topo
        self.vantage = vantage
        self._sweeper = sweeper
        self._clock = clock
        self._streaks: dict[str, int] = {}
        self._seq = 0
        # The latest sweep's findings of two sites serving, as sentences.
        self.split_brains: tuple[str, ...] = ()

    def probe(self, active_site: str, timeout: float) -> Report:
        # The checks judge the application against the topology's active site; the one
        # that counts is the one recorded in ZooKeeper, which moves with every failover.
        topo = self._topo.model_copy(update={"active_site": active_site})
        sweep = self._sweeper(topo, timeout)
        self.split_brains = tuple(r.reason for r in sweep.split_brains())
        sites = {}
        for site in topo.datacenters():
            verdict = judge_site(sweep.results, site, service_targets(topo, site))
            streak = self._streaks.get(site, 0) + 1 if verdict.status == DOWN else 0
            self._streaks[site] = streak
            sites[site] = SiteView(verdict.status, streak, verdict.reason)
        self._seq += 1
        return Report(self.vantage, active_site, self._seq, self._clock(), sweep.seconds, sites)


class Freshness:
    """The leader's memory of when each vantage report last changed, on its own
    monotonic clock: comparing wall clocks across sites would let a skewed clock make
    a frozen vantage point look alive. A report first seen has no age yet (absent)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._seen: dict[str, tuple[int, float | None]] = {}  # site → (mzxid, changed at)

    def views(self, published: Sequence[Published]) -> tuple[VantageView, ...]:
        now = self._clock()
        out = []
        for p in published:
            last = self._seen.get(p.site)
            if last is None:
                self._seen[p.site] = (p.mzxid, None)
            elif last[0] != p.mzxid:
                self._seen[p.site] = (p.mzxid, now)
            changed_at = self._seen[p.site][1]
            try:
                report = Report.from_json(p.data)
            except (KeyError, TypeError, ValueError):
                continue  # a malformed report is no view at all
            age = None if changed_at is None else now - changed_at
            out.append(VantageView(p.site, report.active_site, age, report.sites))
        return tuple(out)
