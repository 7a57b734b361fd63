"""One sweep: every check of the chosen systems at once, each on its own thread.

Checks are mostly waiting on sockets, so threads (not processes) and all of them at
once: a sweep takes about as long as its slowest check, which is bounded by the
timeout. Each check bounds its own waits; the sweep also cuts off any check still
running at `CUTOFF_FACTOR` times the timeout (a check makes a few round trips, each bounded by
the timeout, and one that answers each just in time must not stretch the sweep) and
reports it down. Cut-off threads are daemons, so they never hold up the process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from orchestrator.checks import (
    application,
    dns,
    ldap,
    ldap_canary,
    mirrors,
    object_store,
    zookeeper,
)
from orchestrator.checks.result import Check, CheckResult, Status, Sweep, one_line
from orchestrator.config.model import Topology

log = logging.getLogger(__name__)

SYSTEMS: tuple[str, ...] = ("zookeeper", "ldap", "object-store", "mirrors", "dns", "application")
DEFAULT_TIMEOUT_S = 3.0
CUTOFF_FACTOR = 2.0
# Enough threads that a sweep with a fifth of 500 endpoints blackholed still waits about
# one timeout, not several rounds of it; each idle thread costs only its stack.
MAX_CONCURRENT = 512


def default_timeout(topo: Topology) -> float:
    """The topology's LDAP timeout (the one probe bound it names), else 3 s."""
    return float(topo.ldap.timeout) if topo.ldap is not None else DEFAULT_TIMEOUT_S


def run_checks(
    topo: Topology,
    systems: Iterable[str] | None = None,
    *,
    sites: Iterable[str] | None = None,
    timeout: float | None = None,
    canary: bool = False,
) -> Sweep:
    """Run the checks of `systems` (default: all) and return what they found.

    `sites` keeps only results of those sites and cluster-wide ones; every node is still
    asked, because LDAP lag, the ZooKeeper quorum and DNS serial agreement are judged
    across all of them. `canary` adds the probes that write (LDAP and object-store canaries).
    Never raises for anything a server does; unknown system names are a ValueError.
    """
    started = time.monotonic()
    wanted = list(SYSTEMS if systems is None else systems)
    unknown = [s for s in wanted if s not in SYSTEMS]
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}: use {', '.join(SYSTEMS)}")
    bound = default_timeout(topo) if timeout is None else timeout
    planned = [c for system in wanted for c in _builders(canary)[system](topo, bound)]
    results = summarize(topo, run_bounded(planned, bound, CUTOFF_FACTOR * bound))
    if sites is not None:
        keep = set(sites)
        results = [r for r in results if r.site is None or r.site in keep]
    return Sweep(tuple(results), time.monotonic() - started)


def _builders(canary: bool) -> dict[str, Callable[[Topology, float], list[Check]]]:
    return {
        "zookeeper": zookeeper.checks,
        "ldap": lambda topo, t: (
            ldap.checks(topo, t) + (ldap_canary.checks(topo, t) if canary else [])
        ),
        "object-store": lambda topo, t: object_store.checks(topo, t, canary=canary),
        "mirrors": mirrors.checks,
        "dns": dns.checks,
        "application": application.checks,
    }


def summarize(topo: Topology, results: Sequence[CheckResult]) -> list[CheckResult]:
    """The judgements across nodes of one system (pure)."""
    out = ldap.summarize(results, topo.policy.rpo_limits.ldap)
    out = dns.summarize(out)
    return zookeeper.summarize(out) if any(r.system == "zookeeper" for r in out) else out


def run_bounded(checks: Sequence[Check], bound: float, cutoff: float) -> list[CheckResult]:
    """Each check's result, in order; a check still running at `cutoff` is down."""
    results: list[CheckResult | None] = [None] * len(checks)
    remaining = [len(checks)]
    lock = threading.Lock()
    all_done = threading.Event()
    gate = threading.BoundedSemaphore(MAX_CONCURRENT)
    if not checks:
        return []

    def work(index: int, check: Check) -> None:
        with gate:
            outcome = _safe(check, bound)
        with lock:
            results[index] = outcome
            remaining[0] -= 1
            if remaining[0] == 0:
                all_done.set()

    for index, check in enumerate(checks):
        threading.Thread(
            target=work,
            args=(index, check),
            daemon=True,
            name=f"check {check.system} {check.target}",
        ).start()
    all_done.wait(cutoff)
    with lock:
        return [
            r
            if r is not None
            else check.result(Status.DOWN, f"no complete answer within {cutoff:g} s")
            for r, check in zip(results, checks, strict=True)
        ]


def _safe(check: Check, bound: float) -> CheckResult:
    try:
        return check.run(bound)
    except Exception as exc:  # a bug in a check must cost one result, not the sweep
        log.exception("check %s %s failed", check.system, check.target)
        return check.result(
            Status.DOWN, f"the check itself failed: {type(exc).__name__}: {one_line(exc)}"
        )
