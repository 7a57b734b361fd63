"""What a controller's /metrics carries beyond its decisions, each fed by a loop of its own
that the decision loop never waits for:

- the health sweep (`sitectl health`'s read-only checks: LDAP lag per writer, mirror lag
  per volume, object-store lag, DNS agreement, parity) every `policy.health_every`
  (default 60 s), judged against the site ZooKeeper records as active, and from it the
  estimated loss of a move to the standby per kind (the readiness gate's arithmetic).
  The sweep also goes on the Board (`health`) for the status page, and while someone
  looks at the page (`viewed()`) it is taken at the page's refresh instead, so each view
  shows a sweep that recent: one sweep serves both;
- the records every RECORDS_EVERY_S: pause, the operation records in ZooKeeper and the
  drill reports under the topology's local_state, summed up by controller/ledger.py.

Every controller runs both, leader or not: each scrape target then has the figures, and
an alert needs no leader to find them. A failure is logged once per new sentence and
the previous figures stay (`sitectl_sweep_timestamp_seconds` and
`sitectl_records_read_timestamp_seconds` say how old they are).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.checks import Sweep, readiness, run_checks
from orchestrator.config.model import Topology
from orchestrator.controller.http import Board, Metrics
from orchestrator.controller.ledger import Ledger, ledger
from orchestrator.coordination.store import ZkStore
from orchestrator.history import history, read_drills
from orchestrator.records import FINISHED_OP, OperationRecord

log = logging.getLogger("sitectl.controller")

RECORDS_EVERY_S = 10.0  # a few small znodes and a directory listing: cheap
VIEWED_EVERY_S = 5.0  # the status page's refresh (controller/page.py)
VIEWED_FOR_S = 60.0  # how long a page view keeps the sweep at that pace

SweepFn = Callable[[Topology], Sweep]


def full_sweep(topo: Topology) -> Sweep:
    return run_checks(topo)


def drill_reports(topo: Topology) -> Path:
    """Where `sitectl drill` keeps its reports by default (cli/drill.py)."""
    return topo.resolve(topo.local_state) / "drills"


class Monitor:
    def __init__(
        self,
        topo: Topology,
        store: ZkStore,
        metrics: Metrics,
        active: Callable[[], str],
        *,
        sweep_fn: SweepFn = full_sweep,
        reports: Path | None = None,
        board: Board | None = None,
    ) -> None:
        self.topo, self.store, self.metrics, self.board = topo, store, metrics, board
        self._viewed_at = -float("inf")  # time.monotonic() of the page's latest view
        self._active = active  # the active site as the controller last read it
        self._sweep_fn = sweep_fn
        self.reports = reports if reports is not None else drill_reports(topo)
        # Finished operations never change again: read once, not at every pass.
        self._finished: dict[str, OperationRecord] = {}
        self._said = {"sweep": "", "records": ""}
        limits = topo.policy.rpo_limits
        metrics.limits(
            {"volume": limits.volume, "ldap": limits.ldap, "object_store": limits.object_store}
        )

    # ---- the health sweep ---------------------------------------------------------

    def sweep_once(self) -> Sweep:
        active = self._active()
        topo = self.topo.model_copy(update={"active_site": active})
        sweep = self._sweep_fn(topo)
        standby = next((s for s in topo.datacenters() if s != active), None)
        verdict = readiness(topo, standby, sweep) if standby else None
        now = time.time()
        self.metrics.swept(sweep, verdict, now)
        if self.board is not None:
            self.board.update(health={**sweep.to_json(), "at": now})
        return sweep

    def viewed(self) -> None:
        """The status page was looked at: sweep at its refresh for a while."""
        self._viewed_at = time.monotonic()

    def _every(self) -> float:
        if time.monotonic() - self._viewed_at < VIEWED_FOR_S:
            return min(VIEWED_EVERY_S, self.topo.policy.health_every)
        return self.topo.policy.health_every

    def sweep_loop(self, stop: threading.Event) -> None:
        """Sweep at once, then every `policy.health_every` (the page's refresh while it
        is looked at) after the previous one began; a sweep that takes longer than that
        is followed by the next at once."""
        log.info(
            "the health sweep for /metrics and the status page runs every %g s "
            "(policy.health_every), every %g s while the page is looked at",
            self.topo.policy.health_every,
            min(VIEWED_EVERY_S, self.topo.policy.health_every),
        )
        while not stop.is_set():
            began = time.monotonic()
            self._guarded("sweep", self.sweep_once)
            # Checked each second: a first view after a quiet minute is served soon.
            while not stop.is_set() and time.monotonic() < began + self._every():
                stop.wait(min(1.0, max(0.0, began + self._every() - time.monotonic())))

    # ---- the records --------------------------------------------------------------

    def records_once(self) -> Ledger:
        paused = self.store.paused() is not None
        current = self.store.current_operation()
        operations = [self._operation(op_id) for op_id in self.store.operation_ids()]
        found = ledger(history(operations, read_drills(self.reports)), current)
        self.metrics.ledger(paused, found, time.time())
        return found

    def _operation(self, op_id: str) -> OperationRecord:
        if op_id in self._finished:
            return self._finished[op_id]
        op, _ = self.store.operation(op_id)
        if op.status in FINISHED_OP:
            self._finished[op_id] = op
        return op

    def records_loop(self, stop: threading.Event) -> None:
        while not stop.is_set():
            self._guarded("records", self.records_once)
            stop.wait(RECORDS_EVERY_S)

    # ---- both -------------------------------------------------------------------

    def _guarded(self, what: str, work: Callable[[], object]) -> None:
        """Run `work`; a failure (ZooKeeper away, a bug) is logged when it says something
        new, and never ends the loop."""
        try:
            work()
        except Exception as exc:
            sentence = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
            if sentence != self._said[what]:
                log.warning(
                    "the %s for /metrics failed (%s): keeping the previous figures", what, sentence
                )
                self._said[what] = sentence
            return
        if self._said[what]:
            log.info("the %s for /metrics works again", what)
            self._said[what] = ""
