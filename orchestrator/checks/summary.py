"""A sweep folded to one line per system per site, worst first: what fits a screen.

A sweep of the Zimbra example holds a hundred-odd results (every LDAP writer, every
volume, every bucket, every setting); an operator first wants to know which system at
which site is not well, and why. The full table stays one `--verbose` away.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.checks.object_store import LAG as OBJECT_STORE_LAG
from orchestrator.checks.result import CheckResult, Status, Sweep, worst_of

# The figures that say how far a replica is behind: the headline of a healthy system.
LAG_FIGURES = ("lag_seconds", OBJECT_STORE_LAG)
_RANK = {Status.DOWN: 0, Status.DEGRADED: 1, Status.OK: 2}


@dataclass(frozen=True)
class SystemLine:
    site: str | None  # None: cluster-wide
    system: str
    status: Status
    checks: int
    problems: tuple[CheckResult, ...]  # the results that are not ok, worst first
    max_lag: float | None  # the largest lag figure among the results, if any has one

    def detail(self) -> str:
        """The worst problem with its target, and how many more there are; for a healthy
        system its lag, if it has one."""
        if self.problems:
            first = self.problems[0]
            text = f"{first.target}: {first.reason or first.status.value}"
            more = len(self.problems) - 1
            return f"{text} (+{more} more)" if more else text
        if self.max_lag is not None:
            return f"lag ≤ {self.max_lag:.1f} s"
        return ""

    def to_json(self) -> dict[str, object]:
        return {
            "site": self.site,
            "system": self.system,
            "status": self.status.value,
            "checks": self.checks,
            "problems": len(self.problems),
            "max_lag_seconds": self.max_lag,
            "detail": self.detail(),
        }


def summarise(sweep: Sweep) -> list[SystemLine]:
    """One line per (site, system), the worst status first, then cluster-wide before the
    sites and by name."""
    groups: dict[tuple[str | None, str], list[CheckResult]] = {}
    for result in sweep.results:
        groups.setdefault((result.site, result.system), []).append(result)
    lines = [_line(site, system, results) for (site, system), results in groups.items()]
    return sorted(lines, key=lambda ln: (_RANK[ln.status], ln.site or "", ln.system))


def _line(site: str | None, system: str, results: list[CheckResult]) -> SystemLine:
    problems = sorted(
        (r for r in results if r.status is not Status.OK),
        key=lambda r: (_RANK[r.status], r.target),
    )
    lags = [r.figures[k] for r in results for k in LAG_FIGURES if k in r.figures]
    return SystemLine(
        site=site,
        system=system,
        status=worst_of([r.status for r in results]),
        checks=len(results),
        problems=tuple(problems),
        max_lag=max(lags) if lags else None,
    )
