"""`sitectl health` folds a sweep to one line per system per site, worst first."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from orchestrator.checks.result import CheckResult, Status, Sweep
from orchestrator.checks.summary import summarise
from orchestrator.cli.health import summary_table


def result(
    system: str, site: str | None, target: str, status: Status = Status.OK, **figures: float
) -> CheckResult:
    reason = "" if status is Status.OK else f"{target} is {status.value}"
    return CheckResult(system, site, target, status, reason, figures)


@pytest.mark.parametrize(
    ("results", "expected"),
    [
        # All well: one line per group, its lag the largest of its results'.
        (
            [
                result("ldap", "dc1", "a", lag_seconds=0.5),
                result("ldap", "dc1", "b", lag_seconds=2.0),
            ],
            [("dc1", "ldap", "ok", "lag ≤ 2.0 s")],
        ),
        # The object store's lag figure counts as a lag too; a group with no lag says nothing.
        (
            [
                result("object-store", "dc2", "bucket m@dc2", replication_lag_seconds=3.25),
                result("dns", None, "zone"),
            ],
            [(None, "dns", "ok", ""), ("dc2", "object-store", "ok", "lag ≤ 3.2 s")],
        ),
        # Worst first; the worst problem of a group is named, with how many more there are.
        (
            [
                result("ldap", "dc1", "a"),
                result("mirrors", "dc2", "m1", Status.DEGRADED),
                result("ldap", "dc2", "y", Status.DEGRADED),
                result("ldap", "dc2", "x", Status.DOWN),
                result("ldap", "dc2", "z", Status.DOWN),
            ],
            [
                ("dc2", "ldap", "down", "x: x is down (+2 more)"),
                ("dc2", "mirrors", "degraded", "m1: m1 is degraded"),
                ("dc1", "ldap", "ok", ""),
            ],
        ),
    ],
)
def test_one_line_per_system_per_site_worst_first(
    results: list[CheckResult], expected: list[tuple[str | None, str, str, str]]
) -> None:
    lines = summarise(Sweep(tuple(results)))
    assert [(ln.site, ln.system, ln.status.value, ln.detail()) for ln in lines] == expected


def test_a_large_sweep_fits_a_screen() -> None:
    # The Zimbra example's size: per site, a dozen LDAP writers, six volumes, buckets,
    # settings, each with long reasons; the summary is a line per group, none wrapped.
    results = [
        result(
            system,
            site,
            f"{system} target {n} " + "x" * 60,
            Status.DEGRADED if n == 3 else Status.OK,
        )
        for site in ("dc1", "dc2")
        for system in ("ldap", "mirrors", "object-store", "application", "dns")
        for n in range(12)
    ]
    out = io.StringIO()
    Console(file=out, width=100, color_system=None).print(summary_table(Sweep(tuple(results))))
    rows = out.getvalue().splitlines()
    assert len(rows) == 10 + 4  # ten groups, the header, its rule and the two borders
    assert all(len(row) <= 100 for row in rows)
    assert "2/12 not ok" not in out.getvalue() and "1/12 not ok" in out.getvalue()
