"""One sweep: every check of the chosen systems at once, each on its own thread.

Checks are mostly waiting on sockets, so threads (not processes) and all of them at
once: a sweep takes about as long as its slowest check, which is bounded by the
timeout. Each check bounds its own waits; the sweep also cuts off any check still
running at `CUTOFF_FACTOR` times the timeout (a check makes a few round trips, each bounded by
the timeout, and one that answers each just in time must not stretch the sweep) and
reports it down. Cut-off threads are daemons, so they never hold up the process.

The threads are kept between sweeps (`_Workers`): starting one costs about a millisecond
on a busy 2-core machine, so 500 fresh threads per sweep would start the last checks,
and with them the last timeouts, half a second late. A controller or `health --watch`
sweeps every few seconds and reuses them; a worker idle for `IDLE_S` ends.
"""

from __future__ import annotations

import logging
import queue
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
    parity,
    zookeeper,
)
from orchestrator.checks.result import Check, CheckResult, Status, Sweep, one_line
from orchestrator.config.model import Topology

log = logging.getLogger(__name__)

SYSTEMS: tuple[str, ...] = (
    "zookeeper",
    "ldap",
    "object-store",
    "mirrors",
    "dns",
    "application",
    "parity",
)
DEFAULT_TIMEOUT_S = 3.0
CUTOFF_FACTOR = 2.0
# Enough threads that a sweep with a fifth of 500 endpoints blackholed still waits about
# one timeout, not several rounds of it; each idle thread costs only its stack.
MAX_CONCURRENT = 512
IDLE_S = 60.0


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
        "parity": parity.checks,
    }


def summarize(topo: Topology, results: Sequence[CheckResult]) -> list[CheckResult]:
    """The judgements across nodes of one system (pure)."""
    out = ldap.summarize(results, topo.policy.rpo_limits.ldap)
    out = dns.summarize(out)
    out = application.summarize(topo, out)
    return zookeeper.summarize(out) if any(r.system == "zookeeper" for r in out) else out


def run_bounded(checks: Sequence[Check], bound: float, cutoff: float) -> list[CheckResult]:
    """Each check's result, in order; a check still running at `cutoff` is down."""
    results: list[CheckResult | None] = [None] * len(checks)
    remaining = [len(checks)]
    lock = threading.Lock()
    all_done = threading.Event()
    if not checks:
        return []

    def work(index: int, check: Check) -> None:
        outcome = _safe(check, bound)
        with lock:
            results[index] = outcome
            remaining[0] -= 1
            if remaining[0] == 0:
                all_done.set()

    for index, check in enumerate(checks):
        _WORKERS.submit(f"check {check.system} {check.target}", work, index, check)
    all_done.wait(cutoff)
    with lock:
        return [
            r
            if r is not None
            else check.result(Status.DOWN, f"no complete answer within {cutoff:g} s")
            for r, check in zip(results, checks, strict=True)
        ]


class _Workers:
    """Daemon threads that run submitted calls, at most `limit` at once, kept between
    sweeps. A call waits for a thread only when `limit` are busy (as the semaphore that
    bounded the thread per check did); a thread idle for `idle_s` ends."""

    def __init__(self, limit: int, idle_s: float) -> None:
        self._limit, self._idle_s = limit, idle_s
        self._tasks: queue.SimpleQueue[tuple[str, Callable[..., None], tuple[object, ...]]]
        self._tasks = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting for a task that no submit has claimed yet

    def submit(self, name: str, call: Callable[..., None], *args: object) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1  # one waiting thread will take it
                start = False
            else:
                start = self._threads < self._limit
                self._threads += start
        self._tasks.put((name, call, args))
        if start:
            threading.Thread(target=self._serve, daemon=True, name=name).start()

    def _serve(self) -> None:
        me = threading.current_thread()
        while True:
            try:
                name, call, args = self._tasks.get(timeout=self._idle_s)
            except queue.Empty:
                with self._lock:
                    if self._idle:  # nobody claimed this thread while it waited: end it
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue  # a submit claimed it just now: its task is on the way
            me.name = name  # what a thread dump or a log line shows
            try:
                call(*args)
            finally:
                me.name = "check worker (idle)"
                with self._lock:
                    self._idle += 1


_WORKERS = _Workers(MAX_CONCURRENT, IDLE_S)


def _safe(check: Check, bound: float) -> CheckResult:
    try:
        return check.run(bound)
    except Exception as exc:  # a bug in a check must cost one result, not the sweep
        log.exception("check %s %s failed", check.system, check.target)
        return check.result(
            Status.DOWN, f"the check itself failed: {type(exc).__name__}: {one_line(exc)}"
        )
