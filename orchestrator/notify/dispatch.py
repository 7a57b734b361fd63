"""Delivering notices to the topology's targets: in order, bounded, never in the way.

Each target has a worker thread and a queue of its own: `send` only queues, so an
operation never waits for a receiver, a target that hangs delays no other target, and
each target gets the events in the order they happened (one worker, one queue). Each
delivery is bounded by `notifications.timeout`; a failure is logged as one sentence and
written to the audit log (`notification.failed`), then the next event is tried. `close`
waits for what is still queued up to a bound (the timeout, by default) and gives up on
the rest, saying how many were not delivered: the process that ran the operation may
exit then, and a receiver that hangs must not keep it.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.adapters.secrets import SecretError, read_private_text
from orchestrator.audit import AuditLog
from orchestrator.childenv import hook_env
from orchestrator.config.model import Notifications, NotifyTarget
from orchestrator.notify.payload import Notice, environment, operation_notice
from orchestrator.notify.send import Delivery, post_json, run_command
from orchestrator.records import OperationRecord

log = logging.getLogger("sitectl.notify")


class _Worker:
    """One target's queue and the thread that empties it."""

    def __init__(
        self, target: NotifyTarget, timeout: float, base_dir: Path, audit: AuditLog | None
    ) -> None:
        self.target, self.timeout, self.base_dir, self.audit = target, timeout, base_dir, audit
        self._queue: queue.Queue[Notice | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._child: subprocess.Popen[str] | None = None
        self._given_up = threading.Event()
        self._busy: Notice | None = None  # the notice being delivered

    def put(self, notice: Notice) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._loop, name=f"notify {self.target.describe()}", daemon=True
            )
            self._thread.start()
        self._queue.put(notice)

    def closing(self) -> None:
        """No more events: the worker ends once the queue is empty."""
        if self._thread is not None:
            self._queue.put(None)

    def finish(self, deadline: float) -> None:
        """Wait for the queue to drain until `deadline` (time.monotonic), then give up on
        what is left: the delivery under way is stopped (a command killed), the rest
        dropped, and both said."""
        if self._thread is None:
            return
        self._thread.join(max(0.0, deadline - time.monotonic()))
        left = [n for n in _drain(self._queue) if n is not None]
        busy = self._busy
        if not self._thread.is_alive() or (not busy and not left):
            return
        self._given_up.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()  # a command left running would outlive the operation
        sentence = (
            f"gave up on notifying {self.target.describe()} when the operation ended: "
            f"{busy.event + ' #' + str(busy.seq) + ' was still being sent, ' if busy else ''}"
            f"{len(left)} more event(s) not sent"
        )
        log.warning("%s", sentence)
        self._audit("notification.abandoned", None, sentence, left=[n.event for n in left])

    def _loop(self) -> None:
        while True:
            notice = self._queue.get()
            if notice is None or self._given_up.is_set():
                return
            self._busy = notice
            try:
                sent = self._deliver(notice)
            except Exception as exc:  # a bug here must not end the worker, nor more
                log.exception("notification %s to %s", notice.event, self.target.describe())
                sent = Delivery(False, f"unexpected error {type(exc).__name__}: {exc}")
            finally:
                self._busy = None
            if not self._given_up.is_set():  # else `finish` said it was stopped
                self._said(notice, sent)

    def _deliver(self, notice: Notice) -> Delivery:
        body = notice.to_json()
        if self.target.url is not None:
            headers = {}
            if self.target.token_file is not None:
                try:
                    token = read_private_text(
                        (self.base_dir / self.target.token_file).resolve(), "token file"
                    ).strip()
                except SecretError as exc:
                    return Delivery(False, str(exc))
                headers["Authorization"] = f"Bearer {token}"
            return post_json(
                self.target.url,
                body.encode(),
                self.timeout,
                headers=headers,
                follow_redirects=False,
            )
        assert self.target.command is not None  # a target is a url or a command
        env = hook_env(environment(notice.body()))
        return run_command(self.target.command, body, env, self.timeout, started=self._started)

    def _started(self, child: subprocess.Popen[str]) -> None:
        self._child = child

    def _said(self, notice: Notice, sent: Delivery) -> None:
        what = f"notification {notice.event} #{notice.seq}"
        if notice.operation:
            what += f" of operation {notice.operation}"
        if sent.ok:
            log.debug("%s delivered: %s", what, sent.detail)
            return
        sentence = f"{what} not delivered ({sent.detail}); the operation goes on"
        log.warning("%s", sentence)
        self._audit("notification.failed", notice, sentence)

    def _audit(self, event: str, notice: Notice | None, detail: str, **fields: object) -> None:
        if self.audit is None:
            return
        # The audit log's own trouble (a full disk) is the operation's to meet, not ours.
        with contextlib.suppress(Exception):
            self.audit.write(
                event,
                op=notice.operation if notice else None,
                notification=notice.event if notice else None,
                seq=notice.seq if notice else None,
                target=self.target.describe(),
                detail=detail,
                **fields,
            )


def _drain(items: queue.Queue[Notice | None]) -> list[Notice | None]:
    out: list[Notice | None] = []
    with contextlib.suppress(queue.Empty):
        while True:
            out.append(items.get_nowait())
    return out


class Notifier:
    """The topology's notification targets, each fed through its own worker."""

    def __init__(
        self, settings: Notifications, base_dir: Path, audit: AuditLog | None = None
    ) -> None:
        self.timeout = settings.timeout
        self._workers = [_Worker(t, settings.timeout, base_dir, audit) for t in settings.targets]

    def send(self, notice: Notice) -> None:
        """Queue `notice` for every target that wants its event; returns at once."""
        for worker in self._workers:
            if worker.target.wants(notice.event):
                worker.put(notice)

    def close(self, wait: float | None = None) -> None:
        """Wait up to `wait` seconds (default: the timeout) for what is queued; the end
        of this notifier (one per run of an operation, one per controller)."""
        deadline = time.monotonic() + (self.timeout if wait is None else wait)
        for worker in self._workers:
            worker.closing()  # all at once: each drains while we wait for the others
        for worker in self._workers:
            worker.finish(deadline)


class OperationNotices:
    """The events of one run of one operation, numbered from 1 in the order they happen
    (`notify` may be called from the threads of steps running side by side)."""

    def __init__(
        self,
        notifier: Notifier,
        op: OperationRecord,
        cluster: str,
        *,
        epoch: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._notifier, self._op, self._cluster = notifier, op, cluster
        self._epoch, self._clock = epoch, clock
        self._seq = 0
        self._lock = threading.Lock()

    def notify(self, event: str, step: str | None, detail: str, status: str | None = None) -> None:
        with self._lock:  # the numbers in the order the notices are queued
            self._seq += 1
            notice = operation_notice(
                self._op,
                self._cluster,
                event,
                seq=self._seq,
                at=self._clock(),
                detail=detail,
                step=step,
                status=status,
                epoch=self._epoch,
            )
            self._notifier.send(notice)
