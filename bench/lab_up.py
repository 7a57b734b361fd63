"""Benchmark: how long `sitectl lab up` takes and how much memory the whole lab uses.

    .venv/bin/python bench/lab_up.py [--state-dir DIR] [--keep]

Starts a fresh lab (in a temporary dir unless --state-dir), prints the wall time of
`lab up` and the total RSS of every lab process (each component's whole process group:
Postfix's and Dovecot's workers count), then takes it down again (unless --keep).
Figures are printed, not asserted: the budget is <= 15 s (networks, sshd and every server
ready) and < 1.5 GB RSS.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from orchestrator.lab import state as lab_state
from orchestrator.lab.procs import group_members

BUDGET_S = 15.0  # issue 16: the three-site network, every server ready
BUDGET_RSS_MB = 1536.0


def rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def lab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.lab", *args], capture_output=True, text=True
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--state-dir", type=Path)
    parser.add_argument("--keep", action="store_true", help="leave the lab running")
    args = parser.parse_args()
    if args.state_dir:
        root = args.state_dir.absolute()
    else:
        parent = Path(tempfile.mkdtemp(prefix="sitectl-bench-"))
        parent.chmod(0o755)  # Postfix and Dovecot run as their own users
        root = parent / "state"

    began = time.monotonic()
    up = lab("up", "--state-dir", str(root))
    seconds = time.monotonic() - began
    if up.returncode != 0:
        print(up.stderr.strip(), file=sys.stderr)
        return up.returncode
    try:
        state = lab_state.load(root)
        per_component = {
            comp.name: sum(rss_kib(pid) for pid in group_members(comp)) / 1024
            for comp in state.components.values()
        }
        total = sum(per_component.values())
        print(f"lab up: {seconds:.1f} s (budget {BUDGET_S:.0f} s)")
        for name, mb in sorted(per_component.items(), key=lambda item: -item[1]):
            if mb:
                print(f"  {name:20} {mb:7.1f} MB")
        print(f"total RSS: {total:.0f} MB (budget {BUDGET_RSS_MB:.0f} MB)")
    finally:
        if not args.keep:
            down = lab("down", "--purge", "--state-dir", str(root))
            if down.returncode != 0:
                print(down.stderr.strip(), file=sys.stderr)
            if not args.state_dir:
                root.parent.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
