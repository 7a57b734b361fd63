"""Benchmark: a partition isolating the active site, with the wait (issue 18).

    .venv/bin/python bench/partition.py [--state-dir DIR] [--runs 5]

Runs on the lab at --state-dir, else on its own (run it in a network namespace of your
own when others run labs on the machine). Each run: `lab controllers up` with automatic
promotion on (the controllers and the dead-man agents), the leader seeing all three and
its canaries settled; a client inside dc1 and one inside dc2 each send numbered mail
every 100 ms to their own site (tests/lab/writer.py); then `lab partition dc1`, timed
- partition → dc1's last acknowledged message (its dead-man agent's fence);
- partition → the leader's decision to fail over (detection);
- the failover's fence/wait step (the ticket's last renewal + ttl + clock drift);
- partition → dc2's first acknowledged message (dc2 serving).
Afterwards the lab is renewed, so runs are independent. Prints median and max; asserts
nothing (the invariant, dc1's last before dc2's first, is tests/controller/
test_partition_safety.py's). Target: partition → dc2 serving ≤ 10 s with the lab's 1 s
probes and 3 failures, the wait included.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from benchlab import bench_lab, canaries_settled, lab_command, wait
from detection_to_promotion import controller_topology

from orchestrator.config import load_topology
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.lab import controllers, layout, links

REPO = Path(__file__).resolve().parents[1]
LAB_EXEC = (sys.executable, "-m", "orchestrator.lab", "exec")
TARGET_S = 10.0
STARTING = re.compile(
    r"^(\S+ \S+) sitectl\.controller INFO .*starting automatic failover to dc2$", re.M
)


def status(state_dir: Path, site: str) -> dict:
    """The site's controller's /status, with the lab's bearer token."""
    return controllers.status(controllers.listen(site), controllers.token_file(state_dir))


def leader(state_dir: Path) -> str | None:
    for site in layout.SITES:
        try:
            if status(state_dir, site).get("leader"):
                return site
        except OSError:
            continue
    return None


def writer(state_dir: Path, site: str, out: Path) -> subprocess.Popen[bytes]:
    server = f"{layout.service_ip(site)}:{layout.SMTP_PORT}"
    rcpt = f"{layout.MAIL_USER}@{layout.MAIL_DOMAIN}"
    argv = [sys.executable, "-m", "tests.lab.writer", "--server", server, "--to", rcpt]
    argv += ["--tag", site, "--every", "0.1", "--out", str(out)]
    return subprocess.Popen(
        [*LAB_EXEC, "--state-dir", str(state_dir), site, "--", *argv],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
    )


def acks(out: Path) -> list[float]:
    if not out.exists():
        return []
    return [json.loads(line)["acked_at"] for line in out.read_text().splitlines() if line]


def settle(state_dir: Path, topology: Path) -> None:
    wait(lambda: leader(state_dir) is not None, "a leader", 60, every=0.5)
    wait(
        lambda: (
            status(state_dir, leader(state_dir) or "witness").get("decision")
            == "dc1 up from 3 of 3 vantage points; nothing to do"
        ),
        "all three report",
        60,
        every=0.5,
    )
    canaries_settled(lambda: status(state_dir, leader(state_dir) or "witness"), topology)


def fence_wait(topology: Path) -> float:
    """How long the last operation's fence/wait step took."""
    topo = load_topology(topology)
    client = connect(topo, timeout=10)
    try:
        store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
        last = max(store.operation_ids())  # ids begin with their start time
        record = store.records(last).get("fence/wait/dc1")
    finally:
        client.stop()
        client.close()
    if record is None or record.duration is None:
        return float("nan")
    return record.duration


def once(state_dir: Path, topology: Path) -> dict[str, float]:
    logs = Path(tempfile.mkdtemp(prefix="bench-partition-"))
    up = lab_command(
        "controllers", "up", "--state-dir", str(state_dir), "--topology", str(topology)
    )
    if up.returncode != 0:
        raise SystemExit(f"controllers up: {up.stderr}")
    writers = {}
    try:
        settle(state_dir, topology)
        writers = {s: writer(state_dir, s, logs / f"{s}.jsonl") for s in layout.DATACENTERS}
        wait(lambda: len(acks(logs / "dc1.jsonl")) >= 5, "dc1 takes mail", 30, every=0.2)
        cut = time.time()
        links.partition(state_dir, "dc1")
        wait(lambda: acks(logs / "dc2.jsonl"), "dc2 takes mail", 300, every=0.2)
        found = None
        for site in layout.SITES:
            text = (state_dir / site / "controller" / "controller.log").read_text()
            found = found or STARTING.search(text)
        decided = (
            datetime.strptime(found.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if found
            else float("nan")
        )
        return {
            "dc1 stopped": max(acks(logs / "dc1.jsonl")) - cut,
            "decision": decided - cut,
            "fence/wait": fence_wait(topology),
            "dc2 serving": min(acks(logs / "dc2.jsonl")) - cut,
        }
    finally:
        for proc in writers.values():
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)
        lab_command("heal-network", "--state-dir", str(state_dir))
        lab_command("controllers", "down", "--state-dir", str(state_dir))
        lab_command("down", "--purge", "--state-dir", str(state_dir))
        lab_command("up", "--state-dir", str(state_dir))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, help="a running lab; default: start one")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with bench_lab(args.state_dir, "partition") as state_dir:
        figures: dict[str, list[float]] = {}
        for n in range(1, args.runs + 1):
            topology = controller_topology(state_dir)
            run = once(state_dir, topology)
            for name, value in run.items():
                figures.setdefault(name, []).append(value)
            print(
                f"run {n}: "
                + ", ".join(f"{k} {v:.1f} s" for k, v in run.items())
                + f" (load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
        topo = load_topology(controller_topology(state_dir))
        print(
            f"\npartition of the active site, {platform.node()} ({os.cpu_count()} cores), "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, probe interval "
            f"{topo.policy.probe_interval:g} s, {topo.policy.consecutive_failures} failures, "
            f"fence_after {topo.fence_after:g} s, ticket ttl {topo.ticket_ttl:g} s, clock "
            f"drift {topo.policy.clock_drift:g} s, {args.runs} runs"
        )
        print("| figure | median | max | target |\n| --- | --- | --- | --- |")
        for name, values in figures.items():
            target = f"≤ {TARGET_S:g} s" if name == "dc2 serving" else ""
            label = name if name == "fence/wait" else f"partition → {name}"
            print(
                f"| {label} | {statistics.median(values):.1f} s | {max(values):.1f} s | {target} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
