"""P2 with and without Mitogen for Ansible: the lab switchover and the plain baseline,
interleaved in one session so both see the same machine load.

    pip install mitogen --target /tmp/mitogen-lib        # never into sitectl's venv
    .venv/bin/python bench/switchover_mitogen.py --mitogen /tmp/mitogen-lib \
        --state-dir DIR [--rounds 3] [--out rows.jsonl]

Needs a running lab (`sitectl lab up --state-dir DIR`, active site dc1), run from a
process that sees the lab's mounts (`nsenter --net=/run/netns/NS`, not `ip netns exec`,
which gives the command a mount namespace of its own).

Each round times, for sitectl and then for the baseline, two moves (dc1 → dc2 → dc1)
plain and two with Mitogen's `mitogen_linear` strategy, the order of the two flipped
every round. Mitogen is switched on only through Ansible's own settings
(ANSIBLE_STRATEGY_PLUGINS, ANSIBLE_STRATEGY), which sitectl passes to ansible-playbook
(orchestrator/childenv.py), so the code measured is the same in both columns. Prints
per-step medians and minimums: Mitogen's cost (its bootstrap, paid at a run's first task
on each host) and its gain (every later task) land in different steps.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import switchover_vs_playbook as p2

MODES = ("plain", "mitogen")
# A step shorter than this in both columns (sitectl's own bookkeeping) is not printed.
SHOWN_S = 0.05


def mitogen_env(lib: Path) -> dict[str, str]:
    """Ansible's settings that select Mitogen's linear strategy from `lib` (pip --target)."""
    strategy = lib / "ansible_mitogen" / "plugins" / "strategy"
    if not strategy.is_dir():
        raise SystemExit(f"no Mitogen strategy plugins under {lib}: pip install mitogen --target")
    return {"ANSIBLE_STRATEGY_PLUGINS": str(strategy), "ANSIBLE_STRATEGY": "mitogen_linear"}


def measure(lab: p2.Lab, mitogen: dict[str, str], rounds: int, out: Path) -> list[dict[str, Any]]:
    plain = {k: v for k, v in lab.env.items() if k not in mitogen}
    if lab.sitectl("status")["active_site"] != "dc1":
        raise SystemExit("the lab's active site is not dc1: move it back first")
    groups = p2.plan_groups(lab)
    rows: list[dict[str, Any]] = []
    for n in range(1, rounds + 1):
        # Flipped every round: neither column always runs first after the other's moves.
        order = MODES if n % 2 else MODES[::-1]
        for kind in ("sitectl", "baseline"):
            for mode in order:
                lab.env = {**plain, **(mitogen if mode == "mitogen" else {})}
                for to in ("dc2", "dc1"):
                    leg = (
                        p2.sitectl_leg(lab, to, groups)
                        if kind == "sitectl"
                        else p2.baseline_leg(lab, to)
                    )
                    leg.update(kind=kind, mode=mode, round=n, at=time.strftime("%H:%M:%S"))
                    rows.append(leg)
                    with out.open("a") as f:  # kept as it goes: a long session may be cut
                        f.write(json.dumps(leg) + "\n")
                    print(
                        f"round {n} {kind:8} {mode:7} → {to}: {leg['wall_s']:5.2f} s, "
                        f"load {leg['load']}",
                        file=sys.stderr,
                        flush=True,
                    )
    lab.env = plain
    return rows


def show(rows: list[dict[str, Any]]) -> None:
    for kind in ("sitectl", "baseline"):
        for mode in MODES:
            runs = [r for r in rows if r["kind"] == kind and r["mode"] == mode]
            if not runs:
                continue
            wall = [r["wall_s"] for r in runs]
            inner = "inside_steps_s" if kind == "sitectl" else "playbook_s"
            print(
                f"{kind:8} {mode:7} n={len(runs)}: wall median {statistics.median(wall):.2f} s "
                f"(min {min(wall):.2f}, max {max(wall):.2f}); {inner} median "
                f"{statistics.median(r[inner] for r in runs):.2f} s "
                f"(min {min(r[inner] for r in runs):.2f})"
            )
    steps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["kind"] == "sitectl":
            for step, seconds in r["steps"].items():
                steps[step][r["mode"]].append(seconds)
    print(f"{'step':34} {'median plain':>12} {'mitogen':>8} {'min plain':>10} {'mitogen':>8}")
    for step, by in steps.items():
        plain, mito = by.get("plain") or [0.0], by.get("mitogen") or [0.0]
        if max(*plain, *mito) < SHOWN_S:
            continue
        print(
            f"{step:34} {statistics.median(plain):12.2f} {statistics.median(mito):8.2f} "
            f"{min(plain):10.2f} {min(mito):8.2f}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mitogen", type=Path, help="where pip --target put mitogen")
    parser.add_argument("--state-dir", type=Path, help="a running lab, active site dc1")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="append each move's row here (JSON lines)")
    parser.add_argument("--show", type=Path, help="only summarise rows written before")
    args = parser.parse_args()
    if args.show:
        show([json.loads(line) for line in args.show.read_text().splitlines() if line])
        return 0
    if args.mitogen is None or args.state_dir is None:
        parser.error("--mitogen and --state-dir are needed to measure")
    out = args.out or Path(f"switchover-mitogen-{time.strftime('%Y%m%dT%H%M%S')}.jsonl")
    show(measure(p2.Lab(args.state_dir), mitogen_env(args.mitogen), args.rounds, out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
