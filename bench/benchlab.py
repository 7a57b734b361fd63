"""What the benchmarks share: the lab they run on (the running one named by --state-dir,
or their own, started for the run and taken down at the end), and controllers on it.

The controllers run where `sitectl lab controllers up` runs them, each in its site's
network namespace on the site's address; the benchmarks start them one by one (the
witness first, so it leads) and with fault points of their own, which `lab controllers
up` does not offer."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from orchestrator.config import load_topology
from orchestrator.controller.canary import canary_interval, intervals
from orchestrator.lab import controllers, layout, netns


def lab_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.lab", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@contextlib.contextmanager
def bench_lab(state_dir: Path | None, name: str, shape: str = "single") -> Iterator[Path]:
    """The running lab in `state_dir`, or a lab of `shape` (lab/shape.py) of our own."""
    if state_dir is not None:
        yield state_dir.absolute()
        return
    parent = Path(tempfile.mkdtemp(prefix=f"sitectl-bench-{name}-"))
    parent.chmod(0o755)  # Postfix and Dovecot run as their own users
    own = parent / "state"
    try:
        up = lab_command("up", "--state-dir", str(own), "--shape", shape)
        if up.returncode != 0:
            raise SystemExit(f"lab up failed: {up.stderr}{up.stdout}")
        yield own
    finally:
        lab_command("down", "--purge", "--state-dir", str(own))
        with contextlib.suppress(OSError):
            parent.rmdir()


SITECTL = str(Path(sys.executable).with_name("sitectl"))
# Where each site's controller serves /status in the lab (as `lab controllers up` does).
LISTEN = {site: layout.service_ip(site) for site in layout.SITES}
PORT = controllers.PORT


def wait(condition: Callable[[], Any], what: str, within: float, every: float = 0.05) -> Any:
    """Poll until `condition()` is truthy (errors count as "not yet"), else stop the bench."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):  # servers starting or already gone
            found = condition()
            if found:
                return found
        time.sleep(every)
    raise SystemExit(f"gave up: {what} not true after {within:.0f} s")


class ControllerLab:
    """A lab seen by a benchmark: controller processes on `topology` (each logging to
    `logs/SITE.log`), their /status, and `sitectl` and `lab` commands on the lab."""

    def __init__(self, state_dir: Path, topology: Path, logs: Path) -> None:
        self.state_dir, self.topology, self.logs = state_dir, topology, logs
        self.env = {
            **os.environ,
            "SITECTL_CONFIG": str(state_dir / "topology.yaml"),
            "SITECTL_LAB_DIR": str(state_dir),
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
        }
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, site: str, extra_env: dict[str, str] | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{site}.log", "ab")  # noqa: SIM115 - the process owns it
        self.procs[site] = subprocess.Popen(
            [
                *netns.enter(self.state_dir, site),
                *controllers.command(
                    site,
                    f"{LISTEN[site]}:{PORT}",
                    self.topology,
                    self.token,
                    lab_root=self.state_dir,
                ),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**self.env, **(extra_env or {})},
        )

    @property
    def token(self) -> Path:
        """The lab's bearer token for the controllers' endpoints."""
        return controllers.token_file(self.state_dir)

    def status(self, site: str) -> dict[str, Any]:
        return controllers.status(f"{LISTEN[site]}:{PORT}", self.token, timeout=5)

    def log(self, site: str) -> str:
        return (self.logs / f"{site}.log").read_text()

    def sitectl(self, *args: str) -> dict[str, Any]:
        done = subprocess.run(
            [SITECTL, *args, "--json"],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=600,
            check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"sitectl {' '.join(args)}: {done.stdout[-2000:]}{done.stderr}")
        return dict(json.loads(done.stdout))

    def lab(self, *args: str) -> None:
        done = lab_command(*args, "--state-dir", str(self.state_dir))
        if done.returncode != 0:
            raise SystemExit(f"lab {' '.join(args)}: {done.stderr}{done.stdout}")

    def stop(self) -> None:
        for proc in self.procs.values():
            for sig in (signal.SIGCONT, signal.SIGTERM):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.procs.clear()


def canaries_settled(status: Callable[[], dict[str, Any]], topology: Path) -> None:
    """Wait until the leader (`status`: its /status) has written every kind of canary and
    they have had a tick to reach dc2: an operator's site is never lost a moment after an
    election, and once dc1 is gone the readiness gate bounds the loss by the newest
    canary dc2 holds."""
    topo = load_topology(topology)
    tick = canary_interval(topo)
    settle = max(intervals(topo).values()) + tick
    since = time.time()
    wait(
        lambda: (
            time.time() - since > settle
            and (s := status()).get("canary_at", 0) > since + settle - tick
            and not s.get("canary_problems")
        ),
        "the leader's canaries settled",
        settle + 60,
        every=0.5,
    )
