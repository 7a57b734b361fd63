"""The drill on the real lab: run `sitectl drill` as an operator would, then read the
world back (IMAP, S3, the audit log) to hold the report to what really happened."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.audit import AuditLog
from orchestrator.lab import layout, netns
from tests.conftest import LabHandle
from tests.engine.conftest import Cluster

# `sitectl drill` as main.py will mount it (drill.register(app)), so these tests run the
# real command line before and after the lead wires it into orchestrator/cli/main.py.
LAUNCHER = (
    "import logging, typer\n"
    "from orchestrator.cli import drill\n"
    "logging.getLogger('kazoo').setLevel(logging.CRITICAL)\n"
    "app = typer.Typer()\n"
    "@app.callback()\n"
    "def main() -> None: pass\n"
    "drill.register(app)\n"
    "app()\n"
)


@dataclass
class DrillRun:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any]  # report.json as written
    reports: Path  # the drill's report folder

    @property
    def failures(self) -> list[str]:
        return list(self.report["verdict"]["failures"])

    def figures(self, leg: str) -> dict[str, Any]:
        return next(f for f in self.report["figures"] if f["name"] == leg)

    def leg(self, name: str) -> dict[str, Any]:
        return next(leg for leg in self.report["legs"] if leg["name"] == name)

    def report_path(self, name: str) -> Path:
        return Path(self.reports) / name


@dataclass
class Drills:
    cluster: Cluster
    reports: Path

    def run(self, *args: str, asked: bool = False) -> DrillRun:
        """`sitectl drill ARGS`; `asked`: as an operator's shell runs it, each move asked
        of the leading controller (the lab's controllers must be up)."""
        env = self.cluster.env()
        if asked:
            env.pop("SITECTL_LOCAL", None)
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                LAUNCHER,
                "drill",
                *args,
                "--yes",
                "--json",
                "--report-dir",
                str(self.reports),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.stdout.strip(), f"no JSON from the drill: {done.stderr[-3000:]}"
        printed = json.loads(done.stdout)
        report = json.loads(Path(printed["reports"]["json"]).read_text())
        return DrillRun(
            done.returncode,
            done.stdout,
            done.stderr,
            report,
            Path(printed["reports"]["json"]).parent,
        )

    def history(self) -> list[dict[str, Any]]:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                LAUNCHER,
                "drill",
                "history",
                "--json",
                "--report-dir",
                str(self.reports),
            ],
            capture_output=True,
            text=True,
            env=self.cluster.env(),
            timeout=60,
            check=True,
        )
        return list(json.loads(done.stdout))

    def audit(self) -> list[dict[str, Any]]:
        return AuditLog(self.cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()

    def mirror(self, operation: str, *, check: bool = True) -> None:
        config = self.cluster.lab.state_dir / "volumes" / "mirror-mail.config.json"
        subprocess.run(
            [sys.executable, "-m", "orchestrator.storage", "--config", str(config), operation],
            check=check,
            capture_output=True,
            timeout=60,
        )


@contextmanager
def port_taken(lab: LabHandle, site: str, port: int) -> Iterator[None]:
    """A listener on the site's SMTP address: the site's Postfix cannot bind it. Another
    program holds the port: it answers every connection with a refusal and closes, so a
    probe finds something that is not an MTA (a silent holder would look like a hung
    site, which pre-flight refuses to move to before anything changes).

    Held by a small process inside the site's network namespace (where that address
    lives), which closes its socket when its stdin closes."""
    holder = subprocess.Popen(
        [
            *netns.enter(lab.state_dir, site),
            sys.executable,
            "-c",
            _HOLD_PORT,
            layout.service_ip(site),
            str(port),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "bound"
        yield
    finally:
        if holder.stdin is not None:
            holder.stdin.close()
        holder.wait(timeout=10)


_HOLD_PORT = (
    "import socket, sys\n"
    "sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
    # Earlier SMTP sessions leave the port in TIME_WAIT; that must not stop this bind.
    # Postfix still cannot bind it: Linux allows one listener per address and port.
    "sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "sock.bind((sys.argv[1], int(sys.argv[2])))\n"
    "sock.listen(64)\n"
    "import threading\n"
    "def answer():\n"
    "    while True:\n"
    "        conn, _ = sock.accept()\n"
    "        conn.sendall(b'554 5.3.2 port held by another program\\r\\n')\n"
    "        conn.close()\n"
    "threading.Thread(target=answer, daemon=True).start()\n"
    "print('bound', flush=True)\n"
    "sys.stdin.read()\n"
)


@pytest.fixture(scope="session")
def drill_cluster(lab: LabHandle) -> Cluster:
    return Cluster(lab)


@pytest.fixture
def drills(drill_cluster: Cluster, tmp_path: Path) -> Drills:
    """Each drill starts from the lab's home position (dc1 active, mirrored to dc2), even
    after an earlier test stopped half-way: one failure must not cascade. A new lab when
    it is not there: quicker than operating the way back, which drills test themselves."""
    if not drill_cluster.at_home():
        drill_cluster.lab.renew()
    drill_cluster.assert_protected("dc1")
    return Drills(drill_cluster, tmp_path / "drills")
