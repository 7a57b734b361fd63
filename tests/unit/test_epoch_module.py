"""sitectl_epoch (orchestrator/playbooks/library/sitectl_epoch.py) run as Ansible runs a
module on a host: this machine's Python, its arguments in a JSON file, real processes.

A task's module process can die while its command runs on (SIGKILL, the OOM killer, an
executor that ends its interpreter when its connection drops). The ledger's lock goes
with the module; the command, in its own session, does not. A task of a newer epoch that
then finds the lock free must still stop that command before acting, and a task of an
older epoch must be refused by it and leave it running.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from orchestrator.config.model import INSTALLED_PLAYBOOKS
from tests.conftest import eventually

MODULE = INSTALLED_PLAYBOOKS / "library" / "sitectl_epoch.py"
ACTION = "stop mta on mx1"
SLEEP_S = 8  # the stale command's sleep: long enough for the newer task to come first


def _module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sitectl_epoch", MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _start(tmp_path: Path, epoch: int, shell: str) -> subprocess.Popen[str]:
    args = {"ledger": str(tmp_path / "epochs" / "mta"), "epoch": epoch, "action": ACTION}
    path = tmp_path / f"args-{epoch}.json"
    path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {**args, "shell": shell}}))
    return subprocess.Popen(
        [sys.executable, str(MODULE), str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _run(tmp_path: Path, epoch: int, shell: str) -> tuple[int, dict[str, Any]]:
    task = _start(tmp_path, epoch, shell)
    stdout, stderr = task.communicate(timeout=60)
    assert stdout, stderr
    return task.returncode, json.loads(stdout)


def _holder(tmp_path: Path) -> dict[str, Any]:
    try:
        return json.loads((tmp_path / "epochs" / "mta.holder").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat's fields from the state (field 3) on; None once PID is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _group_runs(pgid: int) -> bool:
    """Whether a process of the group still runs (a zombie no longer acts)."""
    for entry in os.listdir("/proc"):
        fields = _stat(int(entry)) if entry.isdigit() else None
        if fields is not None and fields[0] != "Z" and fields[2] == str(pgid):
            return True
    return False


@pytest.fixture
def groups() -> Iterator[list[tuple[int, str]]]:
    """Command groups a test left running, as (pgid, leader's start time): killed at the
    end if their leader is still that process."""
    left: list[tuple[int, str]] = []
    yield left
    for pgid, started in left:
        fields = _stat(pgid)
        if fields is not None and fields[19] == started:
            os.killpg(pgid, signal.SIGKILL)


def _orphan(tmp_path: Path, epoch: int, shell: str, groups: list[tuple[int, str]]) -> int:
    """Run a task and SIGKILL its module process alone once its command has begun: the
    lock is freed with the module, the command runs on. Its process group."""
    out = tmp_path / "OUT"
    task = _start(tmp_path, epoch, shell)

    def running() -> int | None:
        pgid = _holder(tmp_path).get("command_pgid")
        return pgid if pgid and out.exists() and f"begin-{epoch}" in out.read_text() else None

    pgid = eventually(running, f"epoch {epoch}'s command runs", within=30)
    fields = _stat(pgid)
    assert fields is not None
    groups.append((pgid, fields[19]))
    task.kill()
    task.communicate(timeout=10)
    assert task.returncode == -signal.SIGKILL
    assert _group_runs(pgid), "the command outlived its module"
    return pgid


def test_a_newer_epoch_stops_the_command_its_dead_module_left_running(
    tmp_path: Path, groups: list[tuple[int, str]]
) -> None:
    out = tmp_path / "OUT"
    stale = _orphan(
        tmp_path, 1, f"echo begin-1 >> {out}; sleep {SLEEP_S}; echo end-1 >> {out}", groups
    )
    began = time.monotonic()

    rc, result = _run(tmp_path, 2, f"echo begin-2 >> {out}; echo end-2 >> {out}")

    assert time.monotonic() - began < SLEEP_S - 2, "epoch 2 came after the stale sleep ended"
    assert rc == 0, result
    assert [(h["epoch"], h["command_pgid"]) for h in result["stopped"]] == [(1, stale)]
    assert not _group_runs(stale)
    time.sleep(max(0.0, began + SLEEP_S + 1 - time.monotonic()))  # past the stale sleep
    assert out.read_text().split() == ["begin-1", "begin-2", "end-2"]


def test_an_older_epoch_is_refused_by_a_newer_epochs_command_and_leaves_it_running(
    tmp_path: Path, groups: list[tuple[int, str]]
) -> None:
    out = tmp_path / "OUT"
    newer = _orphan(tmp_path, 5, f"echo begin-5 >> {out}; sleep 60; echo end-5 >> {out}", groups)

    rc, result = _run(tmp_path, 4, f"echo begin-4 >> {out}")

    assert rc == 1, result
    assert result["refused"] is True
    assert result["msg"] == _module().refused(5, 4, ACTION)
    assert _group_runs(newer), "the refused task killed the newer epoch's command"
    assert out.read_text().split() == ["begin-5"]
    # The refused task left the record of that command in place: a task of a still
    # newer epoch finds it and stops it.
    rc, result = _run(tmp_path, 6, f"echo begin-6 >> {out}")
    assert rc == 0, result
    assert [(h["epoch"], h["command_pgid"]) for h in result["stopped"]] == [(5, newer)]
    assert not _group_runs(newer)
    assert out.read_text().split() == ["begin-5", "begin-6"]


def test_a_holder_naming_a_reused_pid_leaves_that_process_alone(
    tmp_path: Path, groups: list[tuple[int, str]]
) -> None:
    other = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        fields = _stat(other.pid)
        assert fields is not None
        groups.append((other.pid, fields[19]))
        (tmp_path / "epochs").mkdir()
        holder = {"pid": other.pid, "epoch": 1, "command_pgid": other.pid}
        holder_file = tmp_path / "epochs" / "mta.holder"
        # The pid the record names now belongs to a process started at another time.
        holder_file.write_text(json.dumps({**holder, "command_started": str(int(fields[19]) - 1)}))

        rc, result = _run(tmp_path, 2, "true")

        assert rc == 0, result
        assert result["stopped"] == []
        assert other.poll() is None, "a process that merely reuses the pid was killed"
        # The same record with that process's own start time names it: it is stopped.
        holder_file.write_text(json.dumps({**holder, "command_started": fields[19]}))
        rc, result = _run(tmp_path, 3, "true")
        assert rc == 0, result
        assert [h["command_pgid"] for h in result["stopped"]] == [other.pid]
        assert other.wait(timeout=10) == -signal.SIGKILL
    finally:
        if other.poll() is None:
            other.kill()
            other.wait()
