"""The leader's request desk: operators' requests taken from ZooKeeper, one at a time,
answered at once, and the ones it takes run on a thread of its own.

Its own thread, not the leader loop's, so that a second request is answered ("busy",
naming who runs what) while the first one runs, and the decisions go on meanwhile; the
operation itself takes the lease, so the desk and an automatic failover can never run
two at once. A watch on the requests wakes the desk the moment one is written; it also
looks every second, in case a watch was lost with a connection.

While it runs an operation the desk writes the engine's sentences under the operation
(operations/ID/log), so whoever follows it from another machine reads the story as the
executor tells it. The imports an operation needs are made when this controller starts
to lead, not when the first request arrives (`warm`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.recipe.watchers import ChildrenWatch

from orchestrator.asking.model import AnswerState, OperationRequest, RequestAnswer, Verb
from orchestrator.asking.store import Pending, RequestStore
from orchestrator.asking.triage import Holding, Take, triage
from orchestrator.audit import beside
from orchestrator.config.model import Topology
from orchestrator.coordination.store import ZkStore
from orchestrator.engine.faults import Faults
from orchestrator.errors import SitectlError
from orchestrator.exitcodes import ExitCode
from orchestrator.records import FINISHED_OP, OperationRecord

if TYPE_CHECKING:
    from orchestrator.engine import operation as engine

log = logging.getLogger("sitectl.controller")

# An operator's sitectl waits this long for an answer before it says no controller
# answers (and withdraws the request); a request older than MAX_AGE is refused, so one
# whose sitectl died before withdrawing it never starts late.
MAX_AGE_S = 30.0
PRUNE_AFTER_S = 3600.0  # closed requests are removed an hour after their answer
LOOK_EVERY_S = 1.0
COOL_AFTER_S = 60.0  # how long a controller follows before it lets its warm worker go


class Commentary(logging.Handler):
    """The engine's sentences, written under the operation as they are logged: on a
    thread of their own (a slow ZooKeeper must not slow a step), kept until the
    operation's id is known, and flushed (for a bounded time) when the run ends."""

    def __init__(self, requests: RequestStore) -> None:
        super().__init__(logging.INFO)
        self._requests = requests
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._op_id: str | None = None
        self._early: list[str] = []
        self._writer = threading.Thread(target=self._write, name="commentary", daemon=True)
        self._closing = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):  # a sentence that cannot be formatted
            self._queue.put(record.getMessage())

    def operation(self, op_id: str) -> None:
        self._op_id = op_id
        self._queue.put(None)  # wake the writer: what waited for the id goes now

    def _write(self) -> None:
        while True:
            sentence = self._queue.get()
            if sentence is not None:
                self._early.append(sentence)
            if self._op_id:
                for said in self._early:
                    try:
                        self._requests.say(self._op_id, said)
                    except SitectlError as exc:
                        log.info("a sentence of %s is not recorded: %s", self._op_id, exc)
                self._early.clear()
            if sentence is None and self._closing.is_set():
                return

    @contextlib.contextmanager
    def attached(self, logger: str = "sitectl.engine") -> Iterator[Commentary]:
        target = logging.getLogger(logger)
        target.addHandler(self)
        self._writer.start()
        try:
            yield self
        finally:
            target.removeHandler(self)
            self._closing.set()
            self._queue.put(None)
            self._writer.join(timeout=2.0)


class RequestDesk:
    def __init__(
        self,
        topo: Topology,
        client: KazooClient,
        store: ZkStore,
        identifier: str,
        leading: Callable[[], bool],
        *,
        max_age: float = MAX_AGE_S,
    ) -> None:
        self.topo, self.client, self.store = topo, client, store
        self.requests = RequestStore(client, store.paths)
        self.identifier = identifier
        self._leading = leading
        self._max_age = max_age
        self._wake = threading.Event()
        self._running: threading.Thread | None = None
        self._running_what: Holding | None = None
        self._watch: ChildrenWatch | None = None
        self._pruned_at = 0.0
        self._audit = beside(topo.resolve(topo.local_state))

    @property
    def busy(self) -> bool:
        return self._running is not None and self._running.is_alive()

    # ---- the loop ------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        following_since: float | None = None
        while not stop.is_set():
            self._wake.wait(LOOK_EVERY_S)
            self._wake.clear()
            if stop.is_set():
                break
            try:
                # Watched from the start, leading or not: one watch for the desk's whole
                # life (kazoo sets it again on each new session), never one per term.
                self._watch_requests()
                if not self._leading():
                    following_since = following_since or time.monotonic()
                    # Not on a session's blip: a leader that leads again a moment later
                    # would pay the worker's start (≈ 1 CPU-s) at each one.
                    if time.monotonic() - following_since >= COOL_AFTER_S:
                        _cool()
                    continue
                following_since = None
                warm()
                _warm_worker()
                self.serve()
            except SitectlError as exc:
                log.info("could not serve the operators' requests: %s", exc)
            except Exception:  # a bug must not end the desk
                log.exception("the request desk failed; looking again in a second")
        _cool()

    def wake(self) -> None:
        self._wake.set()

    def _watch_requests(self) -> None:
        if self._watch is not None:
            return
        with contextlib.suppress(KazooException):
            self.client.ensure_path(self.store.paths.requests)

        def changed(_children: list[str]) -> bool:
            self._wake.set()
            return True

        watch = ChildrenWatch(self.client, self.store.paths.requests)
        try:
            watch(changed)  # registers its session listener, then reads
        except KazooException as exc:
            log.info("cannot watch the requests yet: %s", exc)
            # kazoo registered the listener before the read failed: unregister it, or
            # each failed attempt would leave one behind.
            self.client.remove_listener(watch._session_watcher)
            return
        self._watch = watch

    def serve(self) -> None:
        """Answer every unanswered request, oldest first."""
        for pending in self.requests.pending():
            self._serve(pending)
        now = time.time()
        if now - self._pruned_at > 60:
            self._pruned_at = now
            self.requests.prune(now - PRUNE_AFTER_S)

    def _serve(self, pending: Pending) -> None:
        now = time.time()
        verdict = triage(
            pending.request, pending.name, now - pending.created, self._holding(), self._max_age
        )
        if verdict.take is Take.REFUSE:
            closed = RequestAnswer(
                AnswerState.CLOSED,
                self.identifier,
                now,
                exit_code=int(verdict.exit_code or ExitCode.OPERATION_FAILED),
                line=verdict.line,
            )
            if self.requests.claim(pending.name, closed) is not None:
                log.info("%s", verdict.sentence)
                self._audit.write(
                    "request.refused",
                    request=pending.name,
                    requested_by=pending.request.by if pending.request else None,
                    requested_from=pending.request.host if pending.request else None,
                    reason=pending.request.reason if pending.request else None,
                    executed_by=self.identifier,
                    exit_code=closed.exit_code,
                    detail=verdict.line,
                )
            return
        assert pending.request is not None
        claimed = RequestAnswer(AnswerState.CLAIMED, self.identifier, now)
        version = self.requests.claim(pending.name, claimed)
        if version is None:
            return  # another controller, or the operator's withdrawal, came first
        log.info("%s", verdict.sentence)
        self._running_what = Holding(
            self.identifier, pending.request.describe(), pending.request.by, pending.request.reason
        )
        self._running = threading.Thread(
            target=self._run,
            args=(pending.name, pending.request, claimed, version),
            name=f"request {pending.name}",
            daemon=True,
        )
        self._running.start()

    def _holding(self) -> Holding | None:
        """Who runs an operation now: this desk, or whoever holds the lease."""
        if self.busy:
            return self._running_what
        holders = self.store.lock_holders()
        if not holders:
            return None
        current = self.store.current_operation()
        if not current:
            return Holding(holders[0])
        try:
            op, _ = self.store.operation(current)
        except KeyError:
            return Holding(holders[0])
        what = f"operation {op.id} ({op.mode} {op.from_site}→{op.to_site})"
        return Holding(holders[0], what, f"{op.by} ({op.host})", op.reason)

    # ---- running one ---------------------------------------------------------

    def _run(
        self, name: str, request: OperationRequest, answer: RequestAnswer, version: int
    ) -> None:
        from orchestrator.engine import exits
        from orchestrator.engine import operation as engine

        asked = engine.Asker(request.by, request.host, name, self.identifier)
        s = engine.Session(self.topo, self.client, self.store)
        closing: tuple[int, str, str | None]
        figures: dict[str, object] = {}
        with Commentary(self.requests).attached() as commentary:

            def recorded(op: OperationRecord) -> None:
                nonlocal answer, version
                commentary.operation(op.id)
                answer = answer.moved(AnswerState.RUNNING, time.time(), operation=op.id)
                try:
                    version = self.requests.update(name, answer, version)
                except SitectlError as exc:  # the operator's sitectl then follows the lease
                    log.info("could not tell %s that %s runs: %s", name, op.id, exc)

            try:
                outcome = _start(s, request, asked, recorded)
            except SitectlError as exc:
                code, line = exits.failure(exc)
                closing = (int(code), line, answer.operation)
            except Exception as exc:  # a bug: the operator must still get an answer
                log.exception("request %s failed inside the controller", name)
                closing = (
                    int(ExitCode.OPERATION_FAILED),
                    f"failed: the controller's own error ({type(exc).__name__}: {exc}); "
                    "`sitectl status` shows what ran",
                    answer.operation,
                )
            else:
                op = outcome.op
                closing = (int(exits.outcome_exit(op)), exits.closing_line(op), op.id)
                figures = {k: v for k, v in outcome.figures.items() if _jsonable(v)}
                log.info("request %s: operation %s %s", name, op.id, op.status.value)
        self._close(name, answer, version, *closing, figures=figures)

    def _close(
        self,
        name: str,
        answer: RequestAnswer,
        version: int,
        code: int,
        line: str,
        op: str | None,
        figures: dict[str, object] | None = None,
    ) -> None:
        closed = answer.moved(
            AnswerState.CLOSED,
            time.time(),
            exit_code=code,
            line=line,
            operation=op,
            figures=dict(figures or {}),
        )
        try:
            self.requests.update(name, closed, version)
        except SitectlError as exc:
            log.info("could not close request %s: %s", name, exc)

    def close_resumed(self, op: OperationRecord) -> None:
        """A successor finished (or stopped) an operation a request started: close the
        request's answer, so whoever follows it reads the end there too."""
        from orchestrator.engine import exits

        if op.requested is None or op.status not in FINISHED_OP:
            return
        found = self.requests.answer(op.requested)
        if found is None or found[0].state is AnswerState.CLOSED:
            return
        answer, version = found
        self._close(
            op.requested,
            answer,
            version,
            int(exits.outcome_exit(op)),
            exits.closing_line(op),
            op.id,
        )


def _start(
    s: engine.Session,
    request: OperationRequest,
    asked: engine.Asker,
    recorded: Callable[[OperationRecord], None],
) -> engine.Outcome:
    from orchestrator.engine import operation as engine
    from orchestrator.engine.progress import plan_digest
    from orchestrator.engine.records import Mode
    from orchestrator.errors import ConfigError

    if request.verb is Verb.RESUME:
        op_id = request.operation or s.store.current_operation()
        if not op_id:
            raise ConfigError("no operation in progress to resume")
        recorded(s.store.operation(op_id)[0])
        return engine.resume_operation(s, op_id, faults=Faults.from_env(), asked=asked)
    trigger = "drill" if request.drill else "manual"
    plan = engine.plan_operation(s, Mode(request.verb.value), request.to_site, trigger=trigger)
    if request.plan_digest is not None and plan_digest(plan) != request.plan_digest:
        from orchestrator.engine.exits import PlanChanged

        where = f"the one in {request.plan_file}" if request.plan_file else "the one you confirmed"
        raise PlanChanged(
            f"the plan that would run now ({plan_digest(plan)}) is not {where} "
            f"({request.plan_digest}); nothing changed — plan again and review it"
        )
    return engine.start_operation(
        s,
        plan,
        reason=request.reason or "(no reason given)",
        accept_data_loss=request.accept_data_loss,
        no_fence_wait=request.no_fence_wait,
        discard_divergent=request.discard_divergent,
        drill=request.drill,
        faults=Faults.from_env(),
        asked=asked,
        on_recorded=recorded,
    )


def _jsonable(value: object) -> bool:
    """A figure the answer can carry (JSON as it is, e.g. the salvage's counts)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


_warmed = threading.Event()


def warm() -> None:
    """Import what an operation needs, once, on the thread that found us leading: the
    engine, ansible-runner and the checks' client libraries cost the first request about
    a second of imports otherwise. Followers never pay it (their memory stays small)."""
    if _warmed.is_set():
        return
    _warmed.set()
    started = time.monotonic()
    import orchestrator.engine.exits
    import orchestrator.engine.operation
    import orchestrator.engine.steps  # noqa: F401

    log.info("ready to run operations (imports warmed in %.2f s)", time.monotonic() - started)


def _warm_worker() -> None:
    """A warm ansible-playbook while leading (started again if it ended): a shared run's
    first gate then comes without Python's and Ansible's start."""
    from orchestrator.adapters.ansible import warm_worker

    warm_worker()


def _cool() -> None:
    """No warm ansible-playbook while following: its memory is the leader's to spend."""
    if "orchestrator.adapters.ansible_worker" in sys.modules:
        from orchestrator.adapters import ansible_worker

        ansible_worker.stop()
