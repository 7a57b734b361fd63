"""The lab a benchmark runs on: the running one named by --state-dir, or its own, started
for the run and taken down (every process, mount and address) at the end."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path


def lab_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator.lab", *args],
                          capture_output=True, text=True, timeout=300, check=False)


@contextlib.contextmanager
def bench_lab(state_dir: Path | None, name: str) -> Iterator[Path]:
    if state_dir is not None:
        yield state_dir.absolute()
        return
    parent = Path(tempfile.mkdtemp(prefix=f"sitectl-bench-{name}-"))
    parent.chmod(0o755)  # Postfix and Dovecot run as their own users
    own = parent / "state"
    try:
        up = lab_command("up", "--state-dir", str(own))
        if up.returncode != 0:
            raise SystemExit(f"lab up failed: {up.stderr}{up.stdout}")
        yield own
    finally:
        lab_command("down", "--purge", "--state-dir", str(own))
        with contextlib.suppress(OSError):
            parent.rmdir()
