"""Per-controller HTTP endpoint: /metrics (Prometheus), /status (JSON), /healthz.

Its own CollectorRegistry, so several controllers in one process (tests) and the
process's default collectors never mix.

Serving (`Endpoint`): one thread watches every open connection at once (selectors) until
its request head has arrived, which must happen within `read_timeout` of the accept;
only then does one of a few worker threads answer it. An idle or slow client (a
slowloris) therefore costs a file descriptor for at most `read_timeout`, never a thread,
and at most `max_connections` are open: for a new one, the oldest whose request is still
incomplete is dropped. /healthz goes on answering everyone else meanwhile.

Access (`Access`): /status names hosts and operations, so it is served only to a
request carrying `Authorization: Bearer TOKEN`, the token held in a file only its owner
may read (`TokenFile`: mode 0600 or stricter, checked each time it is read, and read
again whenever the file changes, so a rotation needs no restart); /metrics and /healthz
may be added (`controller.http.token_for`). A controller without a token file refuses
/status. Prometheus sends the token with
`authorization: {type: Bearer, credentials_file: /etc/prometheus/sitectl-controller.token}`.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import http
import json
import logging
import os
import selectors
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from orchestrator.adapters.secrets import SecretError
from orchestrator.checks.metrics import SweepCollector
from orchestrator.checks.readiness import Readiness
from orchestrator.checks.result import Sweep
from orchestrator.controller.decision import Action, SiteView
from orchestrator.controller.ledger import Ledger
from orchestrator.coordination.ticket import Ticket
from orchestrator.evaluate.findings import Evaluation
from orchestrator.version import version_number

log = logging.getLogger("sitectl.controller")


class Metrics:
    def __init__(self, site: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.info = Gauge("sitectl_controller_info", "This controller's site.", ["site"], **labels)
        self.info.labels(site).set(1)
        self.leader = Gauge("sitectl_controller_leader", "1 while the verified leader.", **labels)
        self.connected = Gauge(
            "sitectl_controller_zookeeper_connected",
            "1 while the ZooKeeper session is connected.",
            **labels,
        )
        self.site_down = Gauge(
            "sitectl_controller_site_down",
            "1 if this vantage point's latest probe found the site down.",
            ["site"],
            **labels,
        )
        self.streak = Gauge(
            "sitectl_controller_site_down_streak",
            "Consecutive probes that found the site down.",
            ["site"],
            **labels,
        )
        self.probes = Counter(
            "sitectl_controller_probes", "Site verdicts by status.", ["site", "status"], **labels
        )
        self.probe_seconds = Gauge(
            "sitectl_controller_probe_duration_seconds",
            "How long the latest probe sweep took.",
            **labels,
        )
        self.decisions = Counter(
            "sitectl_controller_decisions", "Leader decisions by action.", ["action"], **labels
        )
        self.fresh = Gauge(
            "sitectl_controller_vantage_points_fresh",
            "Vantage points that reported recently (leader only).",
            **labels,
        )
        self.operation = Gauge(
            "sitectl_controller_operation_in_progress",
            "1 while an operation is recorded as in progress.",
            **labels,
        )
        self.loss = Gauge(
            "sitectl_controller_estimated_loss_seconds",
            "Estimated data loss of a move to the standby now, per kind: from each health "
            "sweep, and from the readiness gate before an automatic failover.",
            ["kind"],
            **labels,
        )
        self.ticket_holder = Gauge(
            "sitectl_ticket_holder",
            "1 for the site that holds the site ticket, 0 for the others.",
            ["site"],
            **labels,
        )
        self.ticket_renewed = Gauge(
            "sitectl_ticket_renewed_timestamp_seconds",
            "When the site ticket was last renewed (its holder's clock).",
            **labels,
        )
        self.ticket_expiry = Gauge(
            "sitectl_ticket_expiry_seconds",
            "Seconds until the site ticket expires unrenewed (negative: expired).",
            **labels,
        )
        self.split_brain = Gauge(
            "sitectl_split_brain",
            "1 while this vantage point's latest probe found two sites serving, else 0.",
            **labels,
        )
        self.ticket_renewals = Counter(
            "sitectl_ticket_renewals",
            "Renewals of the site ticket this controller made.",
            **labels,
        )
        self.plan_ready = Gauge(
            "sitectl_plan_ready",
            "1 if the leader's latest evaluation found that a move to the site could run now.",
            ["to"],
            **labels,
        )
        self.plan_evaluated = Gauge(
            "sitectl_plan_evaluated_timestamp_seconds",
            "When the leader's latest evaluation of a move to the site ended.",
            ["to"],
            **labels,
        )
        self.plan_problem = Gauge(
            "sitectl_plan_problem",
            "Problems the latest evaluation of a move to the site found, per check "
            "(present only while there are some).",
            ["to", "check"],
            **labels,
        )
        self._problem_labels: set[tuple[str, str]] = set()
        for action in Action:
            self.decisions.labels(action.value)
        self._monitoring(labels)

    def _monitoring(self, labels: dict[str, CollectorRegistry]) -> None:
        """What an alert or a dashboard needs beyond the decision loop's own figures: the
        build, the active site, pause, RPO limits, the history's timestamps (controller/
        ledger.py) and the latest health sweep (controller/monitor.py)."""
        self.build = Gauge(
            "sitectl_build_info", "sitectl's version: always 1.", ["version"], **labels
        )
        self.build.labels(version_number()).set(1)
        self.active_site = Gauge(
            "sitectl_active_site",
            "1 for the datacenter ZooKeeper records as active (as this controller last "
            "read it), 0 for the other.",
            ["site"],
            **labels,
        )
        self.paused = Gauge(
            "sitectl_paused", "1 while automation is paused (sitectl pause), else 0.", **labels
        )
        self.rpo_limit = Gauge(
            "sitectl_rpo_limit_seconds",
            "The topology's RPO limit per kind (policy.rpo_limits), for the estimated loss.",
            ["kind"],
            **labels,
        )
        self.operations_recorded = Gauge(
            "sitectl_operations_recorded",
            "Operations recorded in ZooKeeper, by mode, status and trigger.",
            ["mode", "status", "trigger"],
            **labels,
        )
        self.last_operation = Gauge(
            "sitectl_last_operation_timestamp_seconds",
            "When the newest recorded operation started (0: none yet).",
            **labels,
        )
        self.last_automatic_failover = Gauge(
            "sitectl_last_automatic_failover_timestamp_seconds",
            "When the newest automatic failover started (0: none yet).",
            **labels,
        )
        self.unfinished = Gauge(
            "sitectl_operation_unfinished_since_timestamp_seconds",
            "When the current operation started, while it is unfinished (running, failed "
            "or interrupted); absent otherwise.",
            ["mode", "status"],
            **labels,
        )
        self.drills_recorded = Gauge(
            "sitectl_drills_recorded",
            "Drill reports under the topology's local_state, by result.",
            ["result"],
            **labels,
        )
        self.last_drill = Gauge(
            "sitectl_last_drill_timestamp_seconds",
            "When the newest drill ended (0: none yet).",
            **labels,
        )
        self.last_passed_drill = Gauge(
            "sitectl_last_passed_drill_timestamp_seconds",
            "When the newest passed drill ended (0: none yet).",
            **labels,
        )
        self.drill_rto = Gauge(
            "sitectl_last_drill_rto_seconds",
            "The RTO the newest drill that measured one found (its first move; 0: none yet).",
            **labels,
        )
        self.drill_rpo = Gauge(
            "sitectl_last_drill_rpo_seconds",
            "The RPO the newest drill that measured one found (its first move; 0: none yet).",
            **labels,
        )
        self.records_read = Gauge(
            "sitectl_records_read_timestamp_seconds",
            "When this controller last read the operation records and drill reports.",
            **labels,
        )
        self.swept_at = Gauge(
            "sitectl_sweep_timestamp_seconds",
            "When this controller's latest health sweep ended.",
            **labels,
        )
        # The sweep's own families, rendered at each scrape; sitectl_split_brain is this
        # controller's probes' gauge already (a name twice is an invalid exposition).
        self.sweep = SweepCollector(exclude={"sitectl_split_brain"})
        self.registry.register(self.sweep)
        self._series: dict[Gauge, set[tuple[str, ...]]] = {}

    def _only(self, gauge: Gauge, values: Mapping[tuple[str, ...], float]) -> None:
        """Set these series of `gauge` and drop the ones it had that are not among them."""
        for gone in self._series.get(gauge, set()) - set(values):
            gauge.remove(*gone)
        for key, value in values.items():
            gauge.labels(*key).set(value)
        self._series[gauge] = set(values)

    def limits(self, limits: Mapping[str, float]) -> None:
        for kind, seconds in limits.items():
            self.rpo_limit.labels(kind).set(seconds)

    def active(self, datacenters: Iterable[str], active: str) -> None:
        for site in datacenters:
            self.active_site.labels(site).set(1 if site == active else 0)

    def swept(self, sweep: Sweep, verdict: Readiness | None, at: float) -> None:
        """The latest health sweep and, from it, the estimated loss of a move to the
        standby per kind (an unknown one has no series: check_up says why)."""
        self.sweep.update(sweep)
        if verdict is not None:
            known = {(k,): v for k, v in verdict.loss.items() if v is not None}
            self._only(self.loss, known)
            for kind in (k for k, v in verdict.loss.items() if v is None):
                self.loss.remove(kind)  # also a figure the readiness gate left there
        self.swept_at.set(at)

    def ledger(self, paused: bool, found: Ledger, at: float) -> None:
        """The records: pause, operations and drills (controller/ledger.py)."""
        self.paused.set(1 if paused else 0)
        self._only(self.operations_recorded, {k: float(n) for k, n in found.operations.items()})
        self.last_operation.set(found.last_operation)
        self.last_automatic_failover.set(found.last_automatic_failover)
        current = found.current
        self._only(
            self.unfinished,
            {(current.mode, current.status): current.started} if current else {},
        )
        self._only(self.drills_recorded, {(k,): float(n) for k, n in found.drills.items()})
        self.last_drill.set(found.last_drill)
        self.last_passed_drill.set(found.last_passed_drill)
        if found.drill_rto is not None:
            self.drill_rto.set(found.drill_rto)
        if found.drill_rpo is not None:
            self.drill_rpo.set(found.drill_rpo)
        self.records_read.set(at)

    def observed(self, sites: dict[str, SiteView], seconds: float) -> None:
        self.probe_seconds.set(seconds)
        for name, view in sites.items():
            self.site_down.labels(name).set(1 if view.status == "down" else 0)
            self.streak.labels(name).set(view.streak)
            self.probes.labels(name, view.status).inc()

    def ticket(self, sites: Iterable[str], ticket: Ticket | None, now: float) -> None:
        for site in sites:
            self.ticket_holder.labels(site).set(1 if ticket and ticket.holder == site else 0)
        if ticket is not None:
            self.ticket_renewed.set(ticket.renewed_at)
            self.ticket_expiry.set(ticket.expires_at - now)

    def evaluation(self, result: Evaluation) -> None:
        """The latest plan evaluation: ready, when, and one series per check that found
        a problem (a check that no longer does loses its series)."""
        to = result.to_site
        self.plan_ready.labels(to).set(1 if result.ready else 0)
        self.plan_evaluated.labels(to).set(result.at)
        counts: dict[str, int] = {}
        for finding in result.problems:
            counts[finding.check] = counts.get(finding.check, 0) + 1
        for stale in {(t, c) for t, c in self._problem_labels if t == to and c not in counts}:
            self.plan_problem.remove(*stale)
            self._problem_labels.discard(stale)
        for check, count in counts.items():
            self.plan_problem.labels(to, check).set(count)
            self._problem_labels.add((to, check))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Board:
    """What /status shows: written by the controller's threads, read by HTTP's."""

    def __init__(self, **initial: Any) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = dict(initial)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._data.update(fields)

    def read(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._data, default=str))  # a deep, plain copy


Health = Callable[[], tuple[bool, str]]

# ---- the bearer token ----------------------------------------------------------------

MIN_TOKEN = 16  # characters: `openssl rand -hex 32` writes 64
_MAX_TOKEN_FILE = 4096


def read_token(path: Path) -> str:
    """The bearer token in `path`: a regular file that neither its group nor others may
    read or write (checked on the file as opened, not on its name), holding one line of
    at least MIN_TOKEN characters without spaces. SecretError says what to fix."""
    fix = f"e.g. `umask 077; openssl rand -hex 32 > {path}`"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise SecretError(
            f"token file {path} does not exist — write a token into it, {fix}"
        ) from None
    except PermissionError:
        raise SecretError(
            f"token file {path} is not readable by this user — fix its owner or mode (0600)"
        ) from None
    except OSError as exc:
        raise SecretError(f"token file {path} cannot be opened: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SecretError(f"token file {path} is not a regular file — name the file")
        if mode & 0o077:
            raise SecretError(
                f"token file {path} is readable or writable by its group or others (mode "
                f"{stat.S_IMODE(mode):04o}) — chmod 600 {path}"
            )
        data = os.read(fd, _MAX_TOKEN_FILE + 1)
    finally:
        os.close(fd)
    if len(data) > _MAX_TOKEN_FILE:
        raise SecretError(f"token file {path} is longer than {_MAX_TOKEN_FILE} bytes — one line")
    try:
        token = data.decode("ascii").rstrip("\r\n")
    except UnicodeDecodeError:
        raise SecretError(f"token file {path} is not ASCII text — {fix}") from None
    if not token:
        raise SecretError(f"token file {path} is empty — {fix}")
    if any(not c.isprintable() or c.isspace() for c in token):
        raise SecretError(f"token file {path} holds more than one word or line — {fix}")
    if len(token) < MIN_TOKEN:
        raise SecretError(
            f"the token in {path} is shorter than {MIN_TOKEN} characters, too easy to guess — {fix}"
        )
    return token


class TokenFile:
    """A token file, read again whenever it changes (content, owner or mode), its mode
    checked at each reading: a file opened up to others is refused, not used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[int, ...] | None = None
        self._token: str | None = None
        self._error = ""

    def current(self) -> str:
        """The token now; SecretError when the file is unusable (every request is refused
        then: fail closed)."""
        try:
            st = os.stat(self.path)
        except OSError:
            st = None
        seen = (
            ()
            if st is None
            else (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)
        )
        with self._lock:
            if seen != self._seen:
                self._seen = seen
                try:
                    self._token, self._error = read_token(self.path), ""
                except SecretError as exc:
                    self._token, self._error = None, str(exc)
                    log.warning("refusing every request that needs the token: %s", exc)
            if self._token is None:
                raise SecretError(self._error)
            return self._token


ENDPOINTS = {"/status": "status", "/metrics": "metrics", "/healthz": "healthz", "/": "page"}
# The status page's drill reports (/reports/ID), served by the page as `/` is.
PAGE_PREFIX = "/reports/"


@dataclass(frozen=True)
class Access:
    """Which endpoints need the bearer token, and the token (None: none configured, so
    those endpoints are refused to everyone)."""

    token: TokenFile | None
    token_for: frozenset[str] = frozenset({"status"})

    def refusal(self, endpoint: str, authorization: str | None) -> tuple[int, str] | None:
        """None to serve `endpoint`, else the status code and sentence to answer."""
        if endpoint not in self.token_for:
            return None
        if self.token is None:
            return 403, (
                f"/{endpoint} needs a bearer token and this controller has none: set "
                "controller.http.token_file in the topology or run it with --token-file"
            )
        try:
            token = self.token.current()
        except SecretError:
            return 503, "the controller's token file is unusable: see its log"
        if bearer_matches(authorization, token):
            return None
        return 401, f"/{endpoint} needs the controller's bearer token (Authorization: Bearer …)"


def bearer_matches(authorization: str | None, token: str) -> bool:
    """Whether an Authorization header presents `token` as its bearer token (compared in
    constant time)."""
    scheme, _, presented = (authorization or "").strip().partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        presented.strip().encode(), token.encode()
    )


# ---- serving -----------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: Mapping[str, str]  # names in lower case

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True)
class Response:
    code: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: Mapping[str, str] = field(default_factory=dict)

    def encode(self, head_only: bool) -> bytes:
        phrase = http.HTTPStatus(self.code).phrase
        lines = [
            f"HTTP/1.1 {self.code} {phrase}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
            "Connection: close",
            *(f"{name}: {value}" for name, value in self.headers.items()),
        ]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (
            b"" if head_only else self.body
        )


def text(code: int, sentence: str, **headers: str) -> Response:
    return Response(code, (sentence + "\n").encode(), headers=headers)


def parse_head(head: bytes) -> Request | None:
    """The request line and headers of `head` (without the blank line), or None when it
    is not HTTP/1.x (pure)."""
    lines = head.decode("latin-1").replace("\r\n", "\n").split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or " " in name:
            return None
        headers[name.lower()] = value.strip()
    return Request(parts[0], parts[1], headers)


Respond = Callable[[Request], Response]
MAX_HEAD = 8192  # bytes of request line and headers; a scrape sends a few hundred
_ACCEPTS_PER_TURN = 16  # then read what arrived, so a flood of connects starves no one


@dataclass
class _Waiting:
    """A connection whose request head has not arrived yet."""

    deadline: float
    head: bytearray = field(default_factory=bytearray)


class Endpoint:
    """An HTTP/1.1 server answering one request per connection: one thread waits for
    request heads on every connection at once, `workers` threads answer complete ones.
    Threads: 1 + `workers`, whatever the clients do; open connections: at most
    `max_connections`, each given `read_timeout` from its accept to send its head."""

    def __init__(
        self,
        address: str,
        port: int,
        respond: Respond,
        *,
        read_timeout: float = 5.0,
        max_connections: int = 64,
        workers: int = 4,
    ) -> None:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        self._listener = socket.create_server((address, port), family=family, backlog=128)
        self._listener.setblocking(False)
        self.server_address: tuple[str, int] = self._listener.getsockname()[:2]
        self._respond = respond
        self.read_timeout = read_timeout
        self.max_connections = max_connections
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="controller http worker")
        self._waiting: collections.OrderedDict[socket.socket, _Waiting] = collections.OrderedDict()
        self._lock = threading.Lock()  # guards _open, _answering
        self._open = 0  # accepted and not yet closed: waiting, queued or being answered
        self._answering: set[socket.socket] = set()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._listening = False
        self._resume_at = 0.0  # after an accept failed (out of file descriptors)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="controller http", daemon=True)

    def start(self) -> Endpoint:
        self._listen(True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving: close the listener and every connection, end every thread."""
        self._stopping.set()
        self._wake()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)
        else:  # never started: its loop would have closed these
            self._selector.close()
            self._listener.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            left, self._answering = list(self._answering), set()
        for conn in left:  # queued for an answer when the pool was stopped
            conn.close()
        self._wake_r.close()
        self._wake_w.close()

    # ---- the waiting thread ----------------------------------------------------

    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                try:
                    self._turn()
                except Exception:  # a bug here must not end serving (nor spin)
                    log.exception("the HTTP endpoint's waiting thread")
                    time.sleep(0.1)
        finally:
            self._selector.close()
            self._listener.close()
            for conn in list(self._waiting):
                self._drop(conn)

    def _turn(self) -> None:
        now = time.monotonic()
        if not self._listening and now >= self._resume_at and self._has_room():
            self._listen(True)
        timeout = 1.0
        if self._waiting:
            timeout = min(timeout, next(iter(self._waiting.values())).deadline - now)
        if not self._listening and self._resume_at > now:
            timeout = min(timeout, self._resume_at - now)
        for key, _ in self._selector.select(max(0.0, timeout)):
            if key.data == "listen":
                self._accept()
            elif key.data == "wake":
                with contextlib.suppress(OSError):
                    while self._wake_r.recv(512):
                        pass
            elif key.fileobj in self._waiting:
                self._read(key.fileobj)  # type: ignore[arg-type]
        self._expire(time.monotonic())

    def _listen(self, on: bool) -> None:
        if on and not self._listening:
            self._selector.register(self._listener, selectors.EVENT_READ, "listen")
        elif not on and self._listening:
            self._selector.unregister(self._listener)
        self._listening = on

    def _has_room(self) -> bool:
        with self._lock:
            return self._open < self.max_connections

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                conn, _peer = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS: try again shortly
                log.warning("the HTTP endpoint cannot accept a connection: %s", exc)
                self._listen(False)
                self._resume_at = time.monotonic() + 0.5
                return
            conn.setblocking(False)
            with self._lock:
                self._open += 1
            self._waiting[conn] = _Waiting(time.monotonic() + self.read_timeout)
            self._selector.register(conn, selectors.EVENT_READ)
            self._read(conn)  # a client usually sends at once: it may be complete already
            # Over the limit: the oldest still waiting goes (a slowloris's, not the
            # client that was just read whole), else accept no more until one closes.
            while not self._has_room() and self._waiting:
                self._drop(next(iter(self._waiting)))
            if not self._has_room():
                self._listen(False)
                return

    def _read(self, conn: socket.socket) -> None:
        waiting = self._waiting[conn]
        try:
            chunk = conn.recv(4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._drop(conn)
            return
        waiting.head += chunk
        end = waiting.head.find(b"\r\n\r\n")
        if end < 0:
            end = waiting.head.find(b"\n\n")
        if end < 0 and len(waiting.head) <= MAX_HEAD:
            return
        head = bytes(waiting.head[:end]) if 0 <= end <= MAX_HEAD else None
        self._selector.unregister(conn)
        del self._waiting[conn]
        with self._lock:
            self._answering.add(conn)
        self._pool.submit(self._answer, conn, head)

    def _expire(self, now: float) -> None:
        while self._waiting:
            conn, waiting = next(iter(self._waiting.items()))
            if waiting.deadline > now:
                return
            with contextlib.suppress(OSError):
                conn.send(text(408, "the request did not arrive in time").encode(False))
            self._drop(conn)

    def _drop(self, conn: socket.socket) -> None:
        self._waiting.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(conn)
        conn.close()
        with self._lock:
            self._open -= 1

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    # ---- the workers -------------------------------------------------------------

    def _answer(self, conn: socket.socket, head: bytes | None) -> None:
        try:
            request = None if head is None else parse_head(head)
            if head is None:
                response = text(431, f"the request head is longer than {MAX_HEAD} bytes")
            elif request is None:
                response = text(400, "not an HTTP/1.x request")
            elif request.method not in ("GET", "HEAD"):
                response = text(405, "only GET and HEAD", Allow="GET, HEAD")
            else:
                try:
                    response = self._respond(request)
                except Exception:
                    log.exception("answering %s", request.path)
                    response = text(500, "the controller failed to answer: see its log")
            # Blocking, bounded: a client that reads nothing holds a worker no longer.
            conn.settimeout(self.read_timeout)
            conn.sendall(response.encode(request is not None and request.method == "HEAD"))
        except OSError:
            pass  # the client went away or stopped reading
        finally:
            with self._lock:
                self._answering.discard(conn)
                full = self._open >= self.max_connections
                self._open -= 1
            conn.close()
            if full:
                self._wake()  # the waiting thread may accept again


def responder(
    metrics: Metrics, board: Board, health: Health, access: Access, page: Respond | None = None
) -> Respond:
    """What each endpoint answers, after the access check. The status page
    (controller/page.py) checks access itself: it also takes a cookie."""

    def respond(request: Request) -> Response:
        endpoint = ENDPOINTS.get(request.path)
        if endpoint == "page" or request.path.startswith(PAGE_PREFIX):
            if page is None:
                return text(404, "no status page here: try /status")
            return page(request)
        if endpoint is None:
            return text(404, "try /, /metrics, /status or /healthz")
        refused = access.refusal(endpoint, request.headers.get("authorization"))
        if refused is not None:
            code, sentence = refused
            if code == 401:
                return text(code, sentence, **{"WWW-Authenticate": 'Bearer realm="sitectl"'})
            return text(code, sentence)
        if endpoint == "metrics":
            return Response(200, metrics.render(), CONTENT_TYPE_LATEST)
        if endpoint == "status":
            body = json.dumps(board.read(), indent=2).encode() + b"\n"
            return Response(200, body, "application/json")
        ok, why = health()
        return text(200 if ok else 503, why)

    return respond


def serve(
    address: str,
    port: int,
    metrics: Metrics,
    board: Board,
    health: Health,
    *,
    access: Access | None = None,
    read_timeout: float = 5.0,
    max_connections: int = 64,
    page: Respond | None = None,
) -> Endpoint:
    """Serve /metrics, /status and /healthz (and with `page`, the status page at /) on
    `address`:`port` until `shutdown()`; without `access`, /status is refused (no token
    configured)."""
    respond = responder(metrics, board, health, access or Access(None), page)
    return Endpoint(
        address, port, respond, read_timeout=read_timeout, max_connections=max_connections
    ).start()


def access_of(token_file: Path | None, token_for: Iterable[str]) -> Access:
    """The endpoint's access rule; the token file is read at once, so an unusable one
    stops the controller at start (SecretError) rather than refusing every scrape."""
    token = None
    if token_file is not None:
        token = TokenFile(token_file)
        token.current()
    return Access(token, frozenset({"status", *token_for}))
