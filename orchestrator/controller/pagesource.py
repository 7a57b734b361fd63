"""What the live status page reads besides the Board: the cluster's state in ZooKeeper
and the drill reports on this host, read on a thread of its own while someone looks.

Never on an HTTP worker: a kazoo call made while the session is reconnecting waits
for it, and four workers waiting would leave /healthz unanswered. The page shows the
latest read instead, with its age. Reads stop a minute after the last page view, so an
idle controller reads nothing for a page nobody looks at.

The health sweep it shows is the controller's own (controller/monitor.py, on the Board
as `health`), taken at the page's refresh while the page is looked at.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from kazoo.client import KazooClient

from orchestrator.config.model import Topology
from orchestrator.controller.leadership import current_leader
from orchestrator.controller.pageview import ClusterRead, OperationRead, step_lines
from orchestrator.controller.zkstate import ControllerState
from orchestrator.coordination.store import ZkStore
from orchestrator.errors import SitectlError, Unavailable
from orchestrator.history import DrillSeen, history, operation_ids_to_read, read_drills
from orchestrator.records import OperationRecord, StepStatus

log = logging.getLogger("sitectl.controller")

HISTORY_ROWS = 10
MAX_REPORT_BYTES = 8 * 1024 * 1024  # a drill report is a few hundred kilobytes


class Watched:
    """A loop on a thread of its own that runs `work` every `every` seconds for as long
    as someone asked for its result within `idle_after` seconds; asleep otherwise."""

    def __init__(self, name: str, work: Callable[[], None], every: float, idle_after: float):
        self._name, self._work, self.every, self.idle_after = name, work, every, idle_after
        self._wanted_at = -float("inf")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.ran = threading.Event()  # set after the first run

    def want(self) -> None:
        with self._lock:
            self._wanted_at = time.monotonic()
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if time.monotonic() - self._wanted_at > self.idle_after:
                self._wake.wait()  # until the next page view
                self._wake.clear()
                continue
            try:
                self._work()
            except Exception:  # a bug here must not end the page's reads
                log.exception("the status page's %s", self._name)
            self.ran.set()
            self._stop.wait(self.every)


class PageSource:
    def __init__(
        self,
        topo: Topology,
        client: KazooClient,
        store: ZkStore,
        state: ControllerState,
        *,
        every: float = 2.0,
        idle_after: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.topo, self._client, self._store, self._state = topo, client, store, state
        self._clock = clock
        self.drills_root = topo.resolve(topo.local_state) / "drills"
        self._latest: ClusterRead | None = None
        self._plans: dict[str, tuple[tuple[str, str], ...] | None] = {}  # per operation
        self._drills: tuple[tuple[tuple[str, int], ...], list[DrillSeen]] = ((), [])
        self._reader = Watched("status page reader", self._read_once, every, idle_after)

    def latest(self, wait: float = 2.0) -> ClusterRead | None:
        """The latest read; the first view waits up to `wait` seconds for one."""
        self._reader.want()
        if self._latest is None:
            self._reader.ran.wait(wait)
        return self._latest

    def close(self) -> None:
        self._reader.stop()

    # ---- reading -----------------------------------------------------------------

    def _read_once(self) -> None:
        now = self._clock()
        try:
            if not self._client.connected:
                raise Unavailable("this controller has no ZooKeeper session")
            self._latest = self.read(now)
        except SitectlError as exc:
            # What the last read found stays on the page, said to be that old: during an
            # outage the operation's last known step is worth more than a blank.
            previous = self._latest
            self._latest = (
                replace(previous, error=str(exc))
                if previous is not None
                else ClusterRead(now, None, error=str(exc))
            )

    def read(self, now: float) -> ClusterRead:
        store = self._store
        current = store.current_operation()
        ids = store.operation_ids()
        op_id = current or (ids[-1] if ids else None)
        operation = None
        if op_id:
            op, _ = store.operation(op_id)
            records = store.records(op_id)
            planned = self._planned(op)
            operation = OperationRead(
                op,
                in_progress=current is not None,
                steps=step_lines(planned, records),
                planned=planned is not None,
                waiting=tuple(
                    r
                    for r in store.approval_requests(op_id)
                    if (rec := records.get(r.step_id)) is not None
                    and rec.status is StepStatus.RUNNING
                ),
            )
        wanted = operation_ids_to_read(ids, HISTORY_ROWS)
        operations = [store.operation(i)[0] for i in wanted]
        leader = current_leader(self._client, store.paths)
        return ClusterRead(
            at=now,
            active_site=store.active_site(),
            paused=store.paused(),
            ticket=store.ticket(),
            operation=operation,
            history=tuple(history(operations, self.drills(), HISTORY_ROWS)),
            controllers=tuple(self._state.running(leader)),
        )

    def _planned(self, op: OperationRecord) -> tuple[tuple[str, str], ...] | None:
        """The operation's plan as (step, phase), rebuilt as a resume rebuilds it; None
        when this controller's topology no longer gives the plan it runs (its digest)."""
        if op.id not in self._plans:
            # The engine is imported only when there is an operation to show: an idle
            # controller never loads it (controller/daemon.py says why).
            from orchestrator.engine.operation import replan

            try:
                plan = replan(self.topo, op)
            except (SitectlError, ValueError) as exc:
                log.info("the status page shows only the started steps of %s: %s", op.id, exc)
                self._plans[op.id] = None
            else:
                self._plans[op.id] = tuple((s.id, s.phase.value) for s in plan.steps())
        return self._plans[op.id]

    def drills(self) -> list[DrillSeen]:
        """The drill reports on this host, read again only when one of them changed."""
        seen = []
        try:
            for path in sorted(self.drills_root.glob("*/report.json")):
                try:
                    seen.append((str(path), path.stat().st_mtime_ns))
                except OSError:
                    continue
        except OSError:
            return []
        signature = tuple(seen)
        if signature != self._drills[0]:
            self._drills = (signature, read_drills(self.drills_root))
        return self._drills[1]

    def report(self, drill_id: str) -> bytes | None:
        """A drill's report.html, found by its id among the reports listed (never a path
        built from what the request said); None when there is none."""
        for found in self.drills():
            if found.record is not None and found.record.id == drill_id:
                return read_report(found.directory / "report.html")
        return None


def read_report(path: Path) -> bytes | None:
    """The file's bytes if it is a regular file (not a link) of a sane size."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_REPORT_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(MAX_REPORT_BYTES)
    finally:
        os.close(fd)
