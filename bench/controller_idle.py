"""Benchmark P6: an idle controller's memory (RSS) and CPU.

    .venv/bin/python bench/controller_idle.py [--state-dir DIR] [--site dc1]
        [--warmup 30] [--seconds 60] [--follower]

Needs the lab: with `--state-dir` a running one, else it starts its own in a temporary
dir and takes it down at the end (run it in a network namespace of your own when others
run labs on the machine). Starts one controller (`python -m orchestrator.cli.controller
controller run --site SITE`) on the lab's own topology (automatic promotion off: nothing
to do but probe, publish its view and, being alone, lead and write its canaries), waits
`--warmup` seconds, then samples for `--seconds`: VmRSS of every process in the
controller's session (its children too) once a second, and the CPU time the session used
(utime + stime, plus that of children it waited for) over the whole window.
With `--follower` the witness's controller is started first and leads, so the one
measured is a follower (two of a deployment's three are): it probes and publishes, and
neither decides nor writes canaries. Only the measured controller is sampled.
Targets (issue 8, P6): ≤ 80 MB RSS, ≤ 2 % of one core.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchlab import LISTEN, ControllerLab, bench_lab, wait

TARGET_RSS_MB, TARGET_CPU = 80.0, 0.02
TICKS = os.sysconf("SC_CLK_TCK")


def session(sid: int) -> list[int]:
    """Every live process whose session is `sid` (the controller and what it started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) == sid:
                    found.append(int(entry.name))
            except OSError:  # gone meanwhile
                pass
    return found


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime: this process and the children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / TICKS


def threads(pid: int) -> int:
    try:
        return len(list(Path(f"/proc/{pid}/task").iterdir()))
    except OSError:
        return 0


@dataclass(frozen=True)
class Idle:
    site: str
    leader: bool
    decision: str
    rss_median_mb: float
    rss_max_mb: float
    cpu_share: float  # of one core
    threads: int
    window_s: float
    log: str


def measure(
    state_dir: Path, site: str, warmup: float, seconds: float, follower: bool = False
) -> Idle:
    controllers = ControllerLab(
        state_dir, state_dir / "topology.yaml", Path(tempfile.mkdtemp(prefix="bench-p6-"))
    )
    if follower:
        controllers.start("witness")
        wait(lambda: controllers.status("witness").get("leader"), "the witness leads", 60)
    controllers.start(site)
    proc = controllers.procs[site]
    log_name = str(controllers.logs / f"{site}.log")
    try:
        time.sleep(warmup)
        if proc.poll() is not None:
            raise SystemExit(f"the controller exited {proc.returncode}: see {log_name}")
        status = controllers.status(site)
        cpu0 = sum(cpu_seconds(p) for p in session(proc.pid))
        t0 = time.monotonic()
        samples = []
        while time.monotonic() - t0 < seconds:
            samples.append(sum(rss_mb(p) for p in session(proc.pid)))
            time.sleep(1.0)
        cpu1 = sum(cpu_seconds(p) for p in session(proc.pid))
        wall = time.monotonic() - t0
        return Idle(
            site=site,
            leader=bool(status.get("leader")),
            decision=str(status.get("decision")),
            rss_median_mb=statistics.median(samples),
            rss_max_mb=max(samples),
            cpu_share=(cpu1 - cpu0) / wall,
            threads=threads(proc.pid),
            window_s=wall,
            log=log_name,
        )
    finally:
        controllers.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, help="a running lab; default: start one")
    parser.add_argument("--site", default="dc1", choices=sorted(LISTEN))
    parser.add_argument(
        "--follower",
        action="store_true",
        help="measure SITE's controller as a follower (the witness's leads)",
    )
    parser.add_argument("--warmup", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    if args.follower and args.site == "witness":
        parser.error("--follower: the witness's controller is the leader; measure dc1 or dc2")
    labs = contextlib.ExitStack()
    state_dir = labs.enter_context(bench_lab(args.state_dir, "p6"))
    try:
        r = measure(state_dir, args.site, args.warmup, args.seconds, args.follower)
    finally:
        labs.close()
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    met = r.rss_max_mb <= TARGET_RSS_MB and r.cpu_share <= TARGET_CPU
    print(
        f"P6 idle controller ({r.site}, {'leader' if r.leader else 'follower'}: "
        f"{r.decision}), {platform.node()} ({os.cpu_count()} cores), "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {load}\n"
        f"  after {args.warmup:g} s warm-up, over {r.window_s:.0f} s: RSS median "
        f"{r.rss_median_mb:.1f} MB, max {r.rss_max_mb:.1f} MB (target ≤ {TARGET_RSS_MB:g} MB); "
        f"CPU {r.cpu_share:.2%} of a core (target ≤ {TARGET_CPU:.0%}); {r.threads} threads; "
        f"{'met' if met else 'NOT met'}\n"
        f"  controller log: {r.log}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
