"""The mirror daemon as a real process on real loop devices.

Waits poll for an outcome (a file in a snapshot, a line in the log) with a generous
deadline; nothing asserts on how long a transfer took.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from orchestrator.storage import MirrorConfig, SitePaths

from .conftest import Lab

pytestmark = [pytest.mark.lab, pytest.mark.timeout(120)]
REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 30.0


def wait_for(what: str, probe: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        if probe():
            return
        time.sleep(0.05)
    pytest.fail(f"gave up waiting for {what}")


def replicated(lab: Lab, site: str, filename: str) -> Callable[[], bool]:
    """True once `filename` is in the newest snapshot recorded in the state file at `site`."""

    def probe() -> bool:
        state = json.loads(lab.config.state_file.read_text())
        last = state.get("last_snapshot")
        return bool(last) and (lab.snap(site, last) / filename).exists()

    return probe


@pytest.fixture
def daemon(lab: Lab) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = lab.state_dir / "mirrord.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.lab.mirrord", "--config", str(lab.config_path)],
            cwd=REPO,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_daemon_transfers_honours_quiesce_and_break_and_follows_reverse(
    lab: Lab, daemon: tuple[subprocess.Popen[bytes], Path]
) -> None:
    proc, log = daemon
    (lab.service("dc1") / "m1").write_text("one")
    wait_for("m1 at dc2", replicated(lab, "dc2", "m1"))

    m = lab.mirror()
    m.quiesce()
    seq = json.loads(lab.config.state_file.read_text())["seq"]
    (lab.service("dc1") / "m2").write_text("two")
    wait_for(
        "the daemon to skip while quiesced",
        lambda: "no scheduled transfer while quiesced" in log.read_text(),
    )
    assert json.loads(lab.config.state_file.read_text())["seq"] == seq

    m.resume()
    wait_for("m2 at dc2 after resume", replicated(lab, "dc2", "m2"))

    m.quiesce()
    m.unmount("dc1")
    m.update()
    m.break_()
    m.mount("dc2")
    wait_for(
        "the daemon to skip while broken",
        lambda: "no scheduled transfer while broken" in log.read_text(),
    )

    m.reverse()
    (lab.service("dc2") / "m3").write_text("three")
    wait_for("m3 back at dc1", replicated(lab, "dc1", "m3"))

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert "stopped" in log.read_text()


def test_daemon_refuses_an_uninitialised_relationship(tmp_path: Path) -> None:
    config = MirrorConfig(
        name="mail",
        source="dc1",
        destination="dc2",
        sites={s: SitePaths(tmp_path / s / "pool", tmp_path / s / "mail") for s in ("dc1", "dc2")},
        state_file=tmp_path / "mirror-mail.json",
    )
    path = tmp_path / "config.json"
    config.save(path)
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.lab.mirrord", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "not initialised" in result.stderr
