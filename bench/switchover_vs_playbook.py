"""Benchmark P2: a lab switchover by sitectl against the same work scripted by hand.

    .venv/bin/python bench/switchover_vs_playbook.py [--shape single|wide] [--local]
        [--state-dir DIR] [--rounds 2] [--json]

Needs the lab: with `--state-dir` a running one (`sitectl lab up --state-dir DIR`, active
site dc1), else it starts its own of `--shape` (single: one mailbox server and volume
per datacenter; wide: two mailbox servers, each with its store and index volumes) in a
temporary dir and takes it down at the end. Run it in a network namespace of your own
when others run labs on the machine.

Each round moves the service there and back twice, interleaved so both see the same
machine load:
- sitectl: `sitectl switchover --to dc2 --yes --json`, run by the leading controller (the
  lab's controllers are started; `--local`: in the sitectl process, as before issue 22),
  then `sitectl reprotect`, the same to dc1, `sitectl reprotect` (reprotects untimed);
- baseline: the shape's playbook (bench/baselines.py) in ONE `ansible-playbook` run (the
  lab commands sitectl's playbooks run, in the same order), bench/baseline/dns.sh
  (`nsupdate` + TSIG, both zones at once), then the post-checks sitectl's verify phase
  makes (every record on every authoritative server, the application's SMTP/IMAP probes
  on the new site: the same functions); the mirrors are reversed between legs (untimed).

Two figures per move, for both:
- total: decision → post-checks green, the wall time of the `sitectl switchover` process
  (its start-up, the request, planning and pre-flight included) and of the baseline's
  three parts;
- downtime: the last write the old site accepted → the first the new site accepted, as
  the drill's write probe sees them (a client that asks DNS where the service is and
  sends a mail there, every 0.1 s here).
For sitectl also: the operation record's own started → finished, the time inside steps
(per group of the plan: the longest step of a parallel group), and the overhead, total
minus time inside steps. Prints the per-step medians, so where the time goes is visible.
Targets (issue 22): total and downtime ratios sitectl / baseline ≤ 1.0, overhead ≤ 10 %.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baselines import baseline_for, lab_shape
from benchlab import bench_lab

from orchestrator.adapters.dns import changes_for_site, verify
from orchestrator.config import load_topology
from orchestrator.config.model import BtrfsVolume, Topology
from orchestrator.coordination.client import connect
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.drill.measure import rto
from orchestrator.drill.model import Leg
from orchestrator.drill.writeprobe import WriteProbe
from orchestrator.engine.steps.common import site_probes

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BASELINE = REPO / "bench" / "baseline"
TARGET_S, TARGET_OVERHEAD, TARGET_RATIO = 15.0, 0.10, 1.0
POST_CHECK_TIMEOUT_S = 30.0
PROBE_INTERVAL_S = 0.1
NEW_SITE_WRITE_WAIT_S = 30.0


def load() -> str:
    """The 1, 5 and 15 minute load averages: the machine may be shared."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Lab:
    def __init__(self, state_dir: Path, local: bool) -> None:
        self.state_dir = state_dir
        self.topology_file = state_dir / "topology.yaml"
        self.env = {
            **os.environ,
            "SITECTL_CONFIG": str(self.topology_file),
            "SITECTL_LAB_DIR": str(state_dir),
            "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
        }
        self.env.pop("SITECTL_LOCAL", None)
        if local:
            self.env["SITECTL_LOCAL"] = "1"

    def topo(self) -> Topology:
        return load_topology(self.topology_file)

    def run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, env=self.env, timeout=600, check=False
        )
        if done.returncode != 0:
            raise SystemExit(
                f"{' '.join(argv)} exited {done.returncode}:\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def sitectl(self, *args: str) -> dict[str, Any]:
        return dict(json.loads(self.run(str(BIN / "sitectl"), *args, "--json").stdout))


def plan_groups(lab: Lab) -> dict[str, int]:
    """Generic step id (see `generic`) → index of its group in the plan dc1 → dc2; the way
    back has the same shape. (`sitectl plan` plans from the topology file's active site,
    so it refuses `--to dc1` while dc2 is active.)"""
    plan = lab.sitectl("plan", "--to", "dc2")
    return {generic(s["id"], "dc2"): g["index"] for g in plan["groups"] for s in g["steps"]}


def generic(step_id: str, to: str) -> str:
    """The step id with the sites named by their part: dc1 → dc2's `mount/dc2/x` and dc2 →
    dc1's `mount/dc1/x` are both `mount/NEW/x`."""
    names = {to: "NEW", other(to): "OLD"}
    return "/".join(names.get(part, part) for part in step_id.split("/"))


class Downtime:
    """The drill's write probe around one move: the last write the old site accepted →
    the first the new site accepted."""

    def __init__(self, lab: Lab, frm: str, to: str, name: str) -> None:
        self._leg = Leg(name, frm, to)
        self._probe = WriteProbe(lab.topo(), "bench-p2", name, interval=PROBE_INTERVAL_S)

    def __enter__(self) -> Downtime:
        self._probe.start()
        return self

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + NEW_SITE_WRITE_WAIT_S
        finished = time.time()
        while not self._probe.accepted_at(self._leg.to_site, finished):
            if time.monotonic() > deadline:
                break
            time.sleep(PROBE_INTERVAL_S)
        self._leg.attempts = self._probe.stop()

    @property
    def seconds(self) -> float:
        measured = rto(self._leg)
        if measured.seconds is None:
            raise SystemExit(f"downtime of {self._leg.name}: {measured.why}")
        return float(measured.seconds)


def sitectl_leg(lab: Lab, to: str, groups: dict[str, int]) -> dict[str, Any]:
    with Downtime(lab, other(to), to, f"sitectl-{to}") as downtime:
        began, asked_at = time.monotonic(), time.time()
        op = lab.sitectl("switchover", "--to", to, "--yes", "--reason", "bench P2")
        wall = time.monotonic() - began
    first_host_step, waited = first_host_step_started(lab, op["id"])
    if op["status"] != "succeeded":
        raise SystemExit(f"switchover to {to}: {op['status']}: {op.get('message')}")
    steps = {generic(s["id"], to): float(s["seconds"] or 0.0) for s in op["steps"]}
    longest: dict[int, float] = defaultdict(float)
    for step, seconds in steps.items():
        group = groups.get(step, -1 - len(longest))  # not in the plan: its own group
        longest[group] = max(longest[group], seconds)
    lab.sitectl("reprotect", "--yes", "--reason", "bench P2")
    return {
        "to": to,
        "wall_s": wall,
        "downtime_s": downtime.seconds,
        # The command's start → the operation recorded (the request, the controller's
        # plan) → the first host step running (pre-flight, the ansible-playbook start).
        "to_record_s": float(op["started"]) - asked_at,
        "to_first_host_step_s": first_host_step - float(op["started"]),
        # The step before it done → the first host step running: ansible-playbook's
        # start, where it was not ready (issue 22: within ~0.2 s).
        "go_to_first_host_step_s": waited,
        "record_s": float(op["finished"]) - float(op["started"]),
        "inside_steps_s": sum(longest.values()),
        "steps": steps,
        "load": load(),
    }


def first_host_step_started(lab: Lab, op_id: str) -> tuple[float, float]:
    """When the operation's first step that stops something on a host (the old site's
    MTA) started, and how long it waited after the step before it (the canary) had
    finished: the engine's go → ansible-playbook running it, from the checkpoints."""
    topo = lab.topo()
    client = connect(topo)
    try:
        store = ZkStore(client, ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster))
        records = store.records(op_id)
    finally:
        client.stop()
        client.close()
    starts = [
        r.started
        for step, r in records.items()
        if step.startswith("disable-application/") and not step.endswith("/canary") and r.started
    ]
    first = min(starts)
    before = max(r.finished for r in records.values() if r.finished and r.finished <= first)
    return first, first - before


def other(site: str) -> str:
    return "dc1" if site == "dc2" else "dc2"


def mirror_configs(topo: Topology) -> list[Path]:
    return [
        topo.resolve(v.mirror_config)
        for v in topo.volumes
        if isinstance(v, BtrfsVolume) and v.mirror_config is not None
    ]


def post_checks(topo: Topology, to: str) -> None:
    """What sitectl's verify phase checks, with the same functions: each zone's records on
    every authoritative server, and the moved roles' protocol probes on the new site."""
    for zone in topo.dns.zones:
        result = verify(
            zone.name,
            changes_for_site(zone, to),
            zone.verify_servers,
            timeout=POST_CHECK_TIMEOUT_S,
            interval=0.05,
        )
        if not result.ok:
            raise SystemExit(f"baseline post-check: {result.describe()}")
    deadline = time.monotonic() + POST_CHECK_TIMEOUT_S
    while True:
        down = [r for r in site_probes(topo, to) if not r.up]
        if not down:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"baseline post-check: {'; '.join(r.describe() for r in down)}")
        time.sleep(0.05)


def baseline_leg(lab: Lab, to: str) -> dict[str, Any]:
    topo = lab.topo()
    frm = other(to)
    baseline = baseline_for(lab_shape(lab.state_dir))
    dns_args = [
        v
        for zone in topo.dns.zones
        for v in (
            zone.name,
            str(zone.update_servers[0]),
            str(topo.resolve(zone.tsig.key_file)) if zone.tsig and zone.tsig.key_file else "",
        )
    ]
    with Downtime(lab, frm, to, f"baseline-{to}") as downtime:
        began = time.monotonic()
        lab.run(
            str(BIN / "ansible-playbook"),
            "-i",
            str(lab.state_dir / "hosts.yml"),
            str(baseline.playbook),
            *baseline.extra_vars(topo, frm, to),
        )
        played = time.monotonic()
        lab.run("sh", str(BASELINE / "dns.sh"), topo.dns.zones[0].records[0].values[to], *dns_args)
        updated = time.monotonic()
        post_checks(topo, to)
        done = time.monotonic()
    # Reprotect, untimed: the new site's volumes now mirror back to the old one.
    for config in mirror_configs(topo):
        lab.run(
            sys.executable, "-m", "orchestrator.storage", "--config", str(config), "reverse", to
        )
    return {
        "to": to,
        "wall_s": done - began,
        "downtime_s": downtime.seconds,
        "playbook_s": played - began,
        "nsupdate_s": updated - played,
        "post_checks_s": done - updated,
        "load": load(),
    }


def median(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in rows)


def report(sitectl: list[dict[str, Any]], baseline: list[dict[str, Any]]) -> dict[str, Any]:
    wall, base = median(sitectl, "wall_s"), median(baseline, "wall_s")
    inside = median(sitectl, "inside_steps_s")
    overheads = [(r["wall_s"] - r["inside_steps_s"]) / r["wall_s"] for r in sitectl]
    steps: dict[str, list[float]] = defaultdict(list)
    for r in sitectl:
        for step, seconds in r["steps"].items():
            steps[step].append(seconds)
    return {
        "figure": "P2 lab switchover, decision → post-checks green, sitectl vs plain "
        "ansible-playbook + nsupdate",
        "machine": f"{platform.node()} {os.cpu_count()} cpu, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "sitectl_runs": sitectl,
        "baseline_runs": baseline,
        "sitectl_median_s": wall,
        "sitectl_max_s": max(r["wall_s"] for r in sitectl),
        "sitectl_record_median_s": median(sitectl, "record_s"),
        "inside_steps_median_s": inside,
        "overhead_median": statistics.median(overheads),
        "baseline_median_s": base,
        "baseline_playbook_median_s": median(baseline, "playbook_s"),
        "baseline_nsupdate_median_s": median(baseline, "nsupdate_s"),
        "baseline_post_checks_median_s": median(baseline, "post_checks_s"),
        "ratio": wall / base,
        "sitectl_downtime_median_s": median(sitectl, "downtime_s"),
        "to_record_median_s": median(sitectl, "to_record_s"),
        "to_first_host_step_median_s": median(sitectl, "to_first_host_step_s"),
        "go_to_first_host_step_median_s": median(sitectl, "go_to_first_host_step_s"),
        "baseline_downtime_median_s": median(baseline, "downtime_s"),
        "downtime_ratio": median(sitectl, "downtime_s") / median(baseline, "downtime_s"),
        "step_medians_s": {k: statistics.median(v) for k, v in steps.items()},
    }


def show(r: dict[str, Any]) -> None:
    print(f"\n{r['figure']}\n  {r['machine']}, {r['date']}, {r['how']}")
    for row in r["sitectl_runs"]:
        print(
            f"  sitectl  → {row['to']}: {row['wall_s']:5.1f} s wall, downtime "
            f"{row['downtime_s']:4.1f} s, record {row['record_s']:5.1f} s, inside steps "
            f"{row['inside_steps_s']:5.1f} s, load {row['load']}"
        )
    for row in r["baseline_runs"]:
        print(
            f"  baseline → {row['to']}: {row['wall_s']:5.1f} s = playbook "
            f"{row['playbook_s']:.1f} + nsupdate {row['nsupdate_s']:.2f} + post-checks "
            f"{row['post_checks_s']:.2f}; downtime {row['downtime_s']:4.1f} s, load {row['load']}"
        )
    print(
        "  sitectl step medians (s): "
        + ", ".join(f"{k} {v:.2f}" for k, v in r["step_medians_s"].items())
    )
    print(
        f"  median sitectl {r['sitectl_median_s']:.1f} s (record {r['sitectl_record_median_s']:.1f}"
        f" s; target ≤ {TARGET_S:g} s), inside steps {r['inside_steps_median_s']:.1f} s, "
        f"overhead {r['overhead_median']:.0%} (target ≤ {TARGET_OVERHEAD:.0%}); baseline "
        f"{r['baseline_median_s']:.1f} s; ratio {r['ratio']:.2f} (target ≤ {TARGET_RATIO:g})"
    )
    print(
        f"  sitectl: command start → operation recorded {r['to_record_median_s']:.2f} s, "
        f"→ first host step {r['to_first_host_step_median_s']:.2f} s more (of which "
        f"{r['go_to_first_host_step_median_s']:.2f} s after the step before it was done)"
    )
    print(
        f"  downtime: sitectl {r['sitectl_downtime_median_s']:.1f} s, baseline "
        f"{r['baseline_downtime_median_s']:.1f} s; ratio {r['downtime_ratio']:.2f} "
        f"(target ≤ {TARGET_RATIO:g})"
    )
    print(f"  the lab ends with {r['ends_with']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path, help="a running lab; default: start one")
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds; each times 2 switchovers by each method (default 2)",
    )
    parser.add_argument("--shape", choices=("single", "wide"), default="single")
    parser.add_argument(
        "--local", action="store_true", help="sitectl runs each switchover in its own process"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    labs = contextlib.ExitStack()
    state_dir = labs.enter_context(bench_lab(args.state_dir, "p2", args.shape))
    lab = Lab(state_dir, args.local)
    if not args.local:
        lab.run(sys.executable, "-m", "orchestrator.lab", "controllers", "up", "--state-dir",
                str(state_dir))  # fmt: skip
        labs.callback(
            subprocess.run,
            [sys.executable, "-m", "orchestrator.lab", "controllers", "down", "--state-dir",
             str(state_dir)],
            capture_output=True,
            check=False,
        )  # fmt: skip
    try:
        if lab.sitectl("status")["active_site"] != "dc1":
            raise SystemExit("the lab's active site is not dc1: move it back first")
        sitectl_runs: list[dict[str, Any]] = []
        baseline_runs: list[dict[str, Any]] = []
        groups = plan_groups(lab)
        for n in range(1, args.rounds + 1):
            for to in ("dc2", "dc1"):
                sitectl_runs.append(sitectl_leg(lab, to, groups))
                print(
                    f"round {n}: sitectl → {to} {sitectl_runs[-1]['wall_s']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
            for to in ("dc2", "dc1"):
                baseline_runs.append(baseline_leg(lab, to))
                print(
                    f"round {n}: baseline → {to} {baseline_runs[-1]['wall_s']:.1f} s",
                    file=sys.stderr,
                    flush=True,
                )
        result = report(sitectl_runs, baseline_runs)
        result["how"] = f"lab shape {lab_shape(state_dir)}, sitectl " + (
            "in its own process (--local)" if args.local else "through the leading controller"
        )
        status = lab.sitectl("status")
        health = subprocess.run(
            [str(BIN / "sitectl"), "health", "--json"],
            capture_output=True,
            text=True,
            env=lab.env,
            timeout=120,
            check=False,
        )
        worst = json.loads(health.stdout)["status"] if health.stdout.strip() else "unknown"
        result["ends_with"] = f"active site {status['active_site']}, health {worst}"
    finally:
        labs.close()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        show(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
