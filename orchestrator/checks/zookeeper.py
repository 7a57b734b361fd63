"""ZooKeeper: each node's role from the `srvr` four-letter word, the quorum, and the
state of our own session.

4lw over a plain socket rather than a kazoo session: a health check must not open a
session per sweep (sessions are what the lease lives on), and `srvr` answers even from
a node that has lost the quorum, which is exactly what we want to tell apart.

Our session is the one the calling process already holds, if any: a process with a
kazoo client reports it for as long as it runs (`reporting_client`; `sitectl health`
opens one for the whole command with `own_session`, which also proves our credentials
are accepted), and the sweep reads its state (CONNECTED, SUSPENDED, LOST). A process
that reported none is told so ("no session"), which is not a fault.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from orchestrator.checks.result import Check, CheckResult, Status, one_line
from orchestrator.config.model import Topology, ZkHost

SYSTEM = "zookeeper"
QUORUM_TARGET = "quorum"
SESSION_TARGET = "our session"
CONNECTING = "CONNECTING"  # a session still being opened (kazoo has no such state)
_ROLES = {"leader": 1.0, "follower": 0.0, "standalone": 1.0}

# A session's state within a timeout: (kazoo state, detail).
SessionState = Callable[[float], tuple[str, str]]
_reported: list[SessionState] = []  # the latest reported session counts
_reported_lock = threading.Lock()


def checks(topo: Topology, timeout: float) -> list[Check]:
    del timeout
    tls = _tls_context(topo)
    nodes = [Check(SYSTEM, h.site, h.address, _reader(h, tls)) for h in topo.zookeeper.hosts]
    return [*nodes, Check(SYSTEM, None, SESSION_TARGET, _session_reader)]


def _tls_context(topo: Topology) -> ssl.SSLContext | None:
    """The secure port's TLS, as sessions speak it (the server's certificate verified)."""
    tls = topo.zookeeper.tls
    if tls is None:
        return None
    context = ssl.create_default_context(cafile=str(topo.resolve(tls.ca_file)))
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(str(topo.resolve(tls.cert_file)), str(topo.resolve(tls.key_file)))
    return context


def _reader(host: ZkHost, tls: ssl.SSLContext | None) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        address, _, port = host.address.rpartition(":")
        try:
            text = four_letter_word(address, int(port), "srvr", timeout, tls)
        except TimeoutError:
            return CheckResult(
                SYSTEM,
                host.site,
                host.address,
                Status.DOWN,
                f"accepted the connection but did not answer within {timeout:g} s",
                {},
            )
        except OSError as exc:
            return CheckResult(
                SYSTEM,
                host.site,
                host.address,
                Status.DOWN,
                f"cannot connect: {one_line(exc.strerror or exc)}",
                {},
            )
        status, reason, figures = judge_srvr(text)
        return CheckResult(SYSTEM, host.site, host.address, status, reason, figures)

    return run


def four_letter_word(
    address: str, port: int, word: str, timeout: float, tls: ssl.SSLContext | None = None
) -> str:
    """The whole answer to `word`; the server closes the connection when done. Over TLS
    on a secure client port (ZooKeeper answers four-letter words there too)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((address, port), timeout=timeout) as plain:
        sock = tls.wrap_socket(plain, server_hostname=address) if tls else plain
        sock.sendall(word.encode())
        chunks = []
        while True:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            chunk = sock.recv(4096)
            if not chunk:
                break
            chunks.append(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def judge_srvr(text: str) -> tuple[Status, str, dict[str, float]]:
    """Status, reason and figures from a `srvr` answer (pure)."""
    if "not currently serving requests" in text:
        return Status.DOWN, "up but not serving: it is not part of a quorum", {}
    if "not in the whitelist" in text or "not executed" in text:
        return Status.DEGRADED, "srvr is not allowed (add it to 4lw.commands.whitelist)", {}
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    mode = fields.get("Mode", "").strip()
    if mode not in _ROLES:
        return Status.DEGRADED, f"answered srvr without a known Mode ({one_line(text, 80)!r})", {}
    figures = {"leader": _ROLES[mode]}
    with contextlib.suppress(ValueError):
        figures["zxid"] = float(int(fields.get("Zxid", "").strip(), 16))
    return Status.OK, "", figures


def summarize(results: Sequence[CheckResult]) -> list[CheckResult]:
    """Add one cluster-wide result: is there a quorum, with exactly one leader?"""
    nodes = [
        r for r in results if r.system == SYSTEM and r.target not in (QUORUM_TARGET, SESSION_TARGET)
    ]
    if not nodes:
        return list(results)
    serving = [r for r in nodes if r.status is Status.OK]
    leaders = [r for r in serving if r.figures.get("leader") == 1.0]
    figures = {
        "serving": float(len(serving)),
        "members": float(len(nodes)),
        "leaders": float(len(leaders)),
    }
    majority = len(nodes) // 2 + 1
    if len(serving) < majority:
        status, reason = (
            Status.DOWN,
            (f"no quorum: {len(serving)} of {len(nodes)} nodes serve, {majority} needed"),
        )
    elif len(leaders) != 1:
        status, reason = Status.DOWN, f"{len(leaders)} nodes claim to lead; exactly one must"
    elif len(serving) < len(nodes):
        down = ", ".join(r.target for r in nodes if r not in serving)
        status, reason = (
            Status.DEGRADED,
            (f"quorum holds on {len(serving)} of {len(nodes)} nodes; not serving: {down}"),
        )
    else:
        status, reason = Status.OK, ""
    return [*results, CheckResult(SYSTEM, None, QUORUM_TARGET, status, reason, figures)]


# -- our session --------------------------------------------------------------------------


@contextlib.contextmanager
def reporting(state: SessionState) -> Iterator[None]:
    """While the block runs, sweeps in this process report `state` as our session."""
    with _reported_lock:
        _reported.append(state)
    try:
        yield
    finally:
        with _reported_lock:
            _reported.remove(state)


def reporting_client(client: Any) -> contextlib.AbstractContextManager[None]:
    """Report a started kazoo client's session (a controller's, an engine's)."""
    return reporting(lambda _timeout: (str(client.state), ""))


def _session_reader(timeout: float) -> CheckResult:
    with _reported_lock:
        state = _reported[-1] if _reported else None
    found = None if state is None else state(timeout)
    status, reason, figures = judge_session(found, timeout)
    return CheckResult(SYSTEM, None, SESSION_TARGET, status, reason, figures)


def judge_session(
    found: tuple[str, str] | None, timeout: float
) -> tuple[Status, str, dict[str, float]]:
    """Status, reason and figures of our session's state (pure)."""
    if found is None:
        return Status.OK, "no session: this process holds no ZooKeeper session", {}
    state, detail = found
    if state == "CONNECTED":
        return Status.OK, "", {"connected": 1.0}
    if state == "SUSPENDED":
        return (
            Status.DEGRADED,
            (
                "suspended: the connection is lost and kazoo is reconnecting; the session, "
                "and a lease held on it, lasts until it expires"
            ),
            {"connected": 0.0},
        )
    if state == CONNECTING:
        return Status.DOWN, f"no session established within {timeout:g} s", {"connected": 0.0}
    if state == "LOST":
        why = f": {detail}" if detail else ""
        return Status.DOWN, (f"lost: expired, closed or never established{why}"), {"connected": 0.0}
    return Status.DEGRADED, f"in an unknown state {one_line(state, 40)!r}", {"connected": 0.0}


class OwnSession:
    """A session of this process's own, opened in the background so that no sweep waits
    on it longer than its timeout; close() ends it (also if it is still being opened)."""

    def __init__(self, topo: Topology) -> None:
        self._lock = threading.Lock()
        self._opened = threading.Event()
        self._client: Any = None
        self._error = ""
        self._closed = False
        threading.Thread(
            target=self._open, args=(topo,), daemon=True, name="zookeeper session"
        ).start()

    def _open(self, topo: Topology) -> None:
        from orchestrator.coordination.client import connect

        try:
            client = connect(topo, timeout=topo.zookeeper.session_timeout)
        except Exception as exc:  # any failure to open is this check's answer, not a crash
            self._error = one_line(exc)
        else:
            with self._lock:
                if self._closed:
                    _stop(client)
                else:
                    self._client = client
        self._opened.set()

    def state(self, timeout: float) -> tuple[str, str]:
        if not self._opened.wait(timeout):
            return CONNECTING, ""
        if self._client is None:
            return "LOST", self._error
        return str(self._client.state), ""

    def close(self) -> None:
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            _stop(client)


def _stop(client: Any) -> None:
    with contextlib.suppress(Exception):  # closing a dead session must not fail a command
        client.stop()
        client.close()


@contextlib.contextmanager
def own_session(topo: Topology) -> Iterator[OwnSession]:
    """Open our own session for the block and report it to the sweeps run inside."""
    session = OwnSession(topo)
    try:
        with reporting(session.state):
            yield session
    finally:
        session.close()
