"""How long does a health sweep of 500 endpoints take when a fifth of them hang?

Binds 500 ZooKeeper-like endpoints on 127.0.200.1 ... 127.0.201.244 (any 127.x address
binds without set-up): 400 answer the `srvr` four-letter word, 100 are blackholes that
accept TCP (the kernel completes the handshake into the backlog) and never answer, as
a SIGSTOPped server does. Then runs `run_checks` on a synthetic topology naming them
all, `--sweeps` times in a row, and prints the times. Because every check runs on its own
thread and is bounded by the timeout, a sweep should take about one timeout, not 100 of
them. The first sweep of a process also starts the sweep's worker threads (cold, as a
one-shot `sitectl health`); later ones reuse them (warm, as the controller's sweep every
probe interval).

    .venv/bin/python bench/health_sweep.py [--endpoints 500] [--blackholed 0.2] [--timeout 1]
        [--sweeps 5]

With `--topology FILE` it sweeps that topology instead (every system), e.g. the lab's
with a site paused (`sitectl lab pause-site dc2`), and prints the time and the worst
status per site.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

# Runnable from a checkout without installing the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.checks import Status, run_checks
from orchestrator.checks.result import worst_of
from orchestrator.checks.sweep import default_timeout
from orchestrator.config import load_topology
from orchestrator.config.model import Topology

PORT = 21810
TARGET_S = 1.5
ANSWER = b"Zookeeper version: bench\nZxid: 0x0\nMode: follower\n"


def addresses(count: int) -> list[str]:
    return [f"127.0.{200 + i // 250}.{1 + i % 250}" for i in range(count)]


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        await reader.readexactly(4)
        writer.write(ANSWER)
        await writer.drain()
    writer.close()


def serve(healthy: list[str], ready: threading.Event) -> None:
    """Answer `srvr` on every healthy address, in one event loop on this thread."""

    async def main() -> None:
        for address in healthy:
            await asyncio.start_server(_answer, address, PORT, backlog=64)
        ready.set()
        await asyncio.Event().wait()  # until the process ends

    asyncio.run(main())


def blackholes(addresses_: list[str]) -> list[socket.socket]:
    """Listening sockets nobody ever accepts on: connect succeeds, nothing answers."""
    holes = []
    for address in addresses_:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, PORT))
        sock.listen(8)
        holes.append(sock)
    return holes


def topology(all_addresses: list[str]) -> Topology:
    data: dict[str, Any] = {
        "cluster": "bench",
        "active_site": "dc1",
        "sites": {"dc1": {"kind": "datacenter"}, "dc2": {"kind": "datacenter"}},
        "ansible": {"inventory": "hosts.yml"},
        "hosts": [{"name": "h", "site": "dc1", "roles": ["app"], "address": "127.0.0.1"}],
        "roles": {"app": {"start_order": 0, "services": ["app"]}},
        "dns": {
            "zones": [
                {
                    "name": "bench.",
                    "scope": "internal",
                    "provider": "route53",
                    "verify_servers": ["127.0.0.1"],
                    "route53": {"hosted_zone_id": "Z"},
                    "records": [{"name": "a", "values": {"dc1": "127.0.0.1"}}],
                }
            ]
        },
        "zookeeper": {
            "hosts": [
                {"address": f"{a}:{PORT}", "site": "dc1" if i % 2 else "dc2"}
                for i, a in enumerate(all_addresses)
            ]
        },
    }
    return Topology.model_validate(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoints", type=int, default=500)
    parser.add_argument("--blackholed", type=float, default=0.2)
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per check (default: 1, or the topology's own)",
    )
    parser.add_argument("--sweeps", type=int, default=5, help="sweeps in a row, ≤ 8 (default 5)")
    parser.add_argument("--topology", type=Path, help="sweep this topology file instead")
    args = parser.parse_args()
    if args.topology is not None:
        return sweep_topology(args.topology, args.timeout)
    args.timeout = 1.0 if args.timeout is None else args.timeout
    everything = addresses(args.endpoints)
    hung = set(everything[:: max(1, round(1 / args.blackholed))]) if args.blackholed else set()
    healthy = [a for a in everything if a not in hung]
    ready = threading.Event()
    threading.Thread(target=serve, args=(healthy, ready), daemon=True).start()
    holes = blackholes(sorted(hung))
    if not ready.wait(30):
        print("the healthy endpoints did not start", file=sys.stderr)
        return 1
    # A blackhole's backlog holds 8 unaccepted connections (`listen(8)`): past that,
    # connects would hang in SYN instead, still down but not the failure promised.
    times, wrong = [], 0
    try:
        for _ in range(max(1, min(args.sweeps, 8))):
            started = time.monotonic()
            sweep = run_checks(topology(everything), ["zookeeper"], timeout=args.timeout)
            times.append(time.monotonic() - started)
            nodes = [r for r in sweep.results if r.target != "quorum"]
            wrong += sum(
                (r.status is Status.DOWN) != (r.target.split(":")[0] in hung) for r in nodes
            )
    finally:
        for sock in holes:
            sock.close()
    counts = Counter(r.status.value for r in nodes)
    warm = times[1:]
    print(
        f"P5 health sweep: {len(nodes)} endpoints, {len(hung)} blackholed, timeout "
        f"{args.timeout:g} s; last sweep {dict(counts)}; misjudged: {wrong}\n"
        f"  {platform.node()} ({os.cpu_count()} cores), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load "
        f"{' '.join(Path('/proc/loadavg').read_text().split()[:3])}\n"
        f"  sweeps: {', '.join(f'{t:.2f}' for t in times)} s\n"
        f"  cold (the first: starts its threads) {times[0]:.2f} s"
        + (f"; warm median {statistics.median(warm):.2f} s, max {max(warm):.2f} s" if warm else "")
        + f"; target ≤ {TARGET_S:g} s: {'met' if max(times) <= TARGET_S else 'NOT met'}"
    )
    return 1 if wrong else 0


def sweep_topology(path: Path, timeout: float | None) -> int:
    topo = load_topology(path)
    sweep = run_checks(topo, timeout=timeout)
    bound = default_timeout(topo) if timeout is None else timeout
    worst: dict[str, Status] = {}
    for r in sweep.results:
        site = r.site or "cluster"
        worst[site] = worst_of([worst.get(site, Status.OK), r.status])
    print(
        f"{path}: {len(sweep.results)} checks, timeout {bound:g} s: sweep took "
        f"{sweep.seconds:.2f} s ({sweep.seconds / bound:.1f} timeouts); worst per site: "
        + ", ".join(f"{s} {w.value}" for s, w in sorted(worst.items()))
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
