"""ZooKeeper: each node's role from the `srvr` four-letter word, and the quorum.

4lw over a plain socket rather than a kazoo session: a health check must not open a
session per sweep (sessions are what the lease lives on), and `srvr` answers even from
a node that has lost the quorum, which is exactly what we want to tell apart.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Sequence

from orchestrator.checks.result import Check, CheckResult, Status, one_line
from orchestrator.config.model import Topology, ZkHost

SYSTEM = "zookeeper"
QUORUM_TARGET = "quorum"
_ROLES = {"leader": 1.0, "follower": 0.0, "standalone": 1.0}


def checks(topo: Topology, timeout: float) -> list[Check]:
    del timeout
    return [Check(SYSTEM, h.site, h.address, _reader(h)) for h in topo.zookeeper.hosts]


def _reader(host: ZkHost) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        address, _, port = host.address.rpartition(":")
        try:
            text = four_letter_word(address, int(port), "srvr", timeout)
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


def four_letter_word(address: str, port: int, word: str, timeout: float) -> str:
    """The whole answer to `word`; the server closes the connection when done."""
    deadline = time.monotonic() + timeout
    with socket.create_connection((address, port), timeout=timeout) as sock:
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
    nodes = [r for r in results if r.system == SYSTEM and r.target != QUORUM_TARGET]
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
