"""The CLI's start-up: wall and CPU time of everyday `sitectl` calls, two checkouts interleaved.

    .venv/bin/python bench/cli_startup.py [--before TREE] [--after TREE] [--runs 5]

Runs `python -m orchestrator.cli.main ARGS` with PYTHONPATH=TREE for each checkout, one
after the other in each round (so both see the same load), and prints the median wall
and CPU (user + system) time per call. CPU is the figure to compare on a shared machine:
wall time follows the load. Needs no lab: `lab status` reads a state dir that does not
exist, `ticket check` stops at the missing ZooKeeper credentials, both after importing
all they would use.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
EXAMPLE = HERE / "inventories/example-zimbra/topology.yaml"
CALLS: dict[str, list[str]] = {
    "--version": ["--version"],
    "validate -c example-zimbra": ["validate", "-c", str(EXAMPLE)],
    "status --help": ["status", "--help"],
    "lab status (no lab)": ["lab", "status", "--state-dir", "{nolab}"],
    "ticket check dc1 (no credentials)": ["ticket", "check", "dc1", "-c", str(EXAMPLE)],
}


def timed(tree: Path, args: list[str]) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SITECTL_")}
    env |= {"PYTHONPATH": str(tree), "COLUMNS": "100"}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "orchestrator.cli.main", *args],
        env=env,
        cwd=tree,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, help="another checkout to compare with")
    parser.add_argument("--after", type=Path, default=HERE)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    trees = {"after": options.after}
    if options.before is not None:
        trees = {"before": options.before, **trees}
    figures: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        nolab = str(Path(scratch) / "no-lab")
        for _ in range(options.runs):
            for call, args in CALLS.items():
                for label, tree in trees.items():
                    filled = [a.replace("{nolab}", nolab) for a in args]
                    figures.setdefault((call, label), []).append(timed(tree, filled))
    for call in CALLS:
        cells = []
        for label in trees:
            runs = figures[(call, label)]
            wall = statistics.median(w for w, _ in runs)
            cpu = statistics.median(c for _, c in runs)
            cells.append(f"{label} {wall:.2f} s wall / {cpu:.2f} s CPU")
        print(f"{call:36s} " + "   ".join(cells))


if __name__ == "__main__":
    main()
