"""The leading controller's warm ansible-playbook (adapters/ansible_zygote.py, its shim and
adapters/ansible_worker.py): when a run may use it (pure), and, with real ansible-playbook
runs on a local host, that a run through it ends as a cold one would — killed whole when
cancelled or when the controller goes, cold when its configuration could differ."""

from __future__ import annotations

import logging
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.adapters import ansible_worker
from orchestrator.adapters.ansible import _run, shared_run_environment, warm_worker
from orchestrator.adapters.ansible_zygote import cold_reason
from orchestrator.errors import Failed
from tests.unit.local_hosts import local_inventory

READY = {"ANSIBLE_NOCOLOR": "1", "PATH": "/usr/bin", "HOME": "/root"}


@pytest.mark.parametrize(
    ("run", "reason"),
    [
        (READY, None),
        # What is each run's own never matters.
        (
            READY
            | {
                "AWX_ISOLATED_DATA_DIR": "/a",
                "ANSIBLE_CACHE_PLUGIN_CONNECTION": "/a/fact_cache",
                "SITECTL_PLAYBOOK_RUN": "1-ab",
                "SITECTL_ANSIBLE_WORKER": "/s",
                "SITECTL_SECRETS_DIR": "/dev/shm/x",
            },
            None,
        ),
        (READY | {"ANSIBLE_FORKS": "3"}, "its environment differs in ANSIBLE_FORKS"),
        (READY | {"HOME": "/home/op"}, "its environment differs in HOME"),
        ({"ANSIBLE_NOCOLOR": "1", "PATH": "/usr/bin"}, "its environment differs in HOME"),
        (
            READY | {"PYTHONPATH": "/x", "ANSIBLE_CONFIG": "/etc/a.cfg"},
            "its environment differs in ANSIBLE_CONFIG, PYTHONPATH",
        ),
    ],
)
def test_a_run_is_warm_only_with_the_workers_configuration(run, reason, tmp_path) -> None:
    assert cold_reason(READY, run, str(tmp_path)) == reason


def test_an_ansible_cfg_where_the_run_starts_makes_it_cold(tmp_path) -> None:
    (tmp_path / "ansible.cfg").write_text("[defaults]\nforks = 3\n")
    assert cold_reason(READY, READY, str(tmp_path)) == f"{tmp_path}/ansible.cfg may configure it"


# -- real runs -------------------------------------------------------------------------

SLEEP = "97.531"  # a sleep no other process on the machine runs
PLAY = """- hosts: all
  gather_facts: false
  tasks:
    - name: greet
      ansible.builtin.command: echo hello
    - name: wait
      ansible.builtin.command: sleep {{ pause | default(0) }}
"""


@pytest.fixture
def worker(tmp_path: Path) -> Iterator[ansible_worker.Worker]:
    started = ansible_worker.start(shared_run_environment)
    deadline = time.monotonic() + 60
    while not started.socket.exists():
        assert started.alive() and time.monotonic() < deadline, "the warm worker never got ready"
        time.sleep(0.05)
    yield started
    ansible_worker.stop()


@pytest.fixture
def host(tmp_path: Path) -> Path:
    (tmp_path / "play.yml").write_text(PLAY)
    return local_inventory(tmp_path)


def _play(tmp_path: Path, inventory: Path, pause: str = "0", **kwargs: object) -> object:
    return _run(
        tmp_path / "play.yml",
        "the test play",
        inventory,
        "h1",
        {"pause": pause},
        tmp_path / "artifacts",
        timeout=60,
        batch=True,
        **kwargs,  # type: ignore[arg-type]
    )


def _commands(tmp_path: Path) -> list[str]:
    return [f.read_text() for f in (tmp_path / "artifacts").rglob("artifacts/*/command")]


def _sleeping() -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and SLEEP.encode() in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


def _children(pid: int) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if (
                proc.name.isdigit()
                and int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid
            ):
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def _until(what, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return False


def test_a_run_through_the_worker_reports_its_tasks_and_hosts(worker, host, tmp_path) -> None:
    tasks: list[str] = []
    result, processed = _play(tmp_path, host, on_task=lambda h, task: tasks.append(f"{h} {task}"))
    assert result.ok == frozenset({"h1"}) and not result.failed, result
    assert tasks == ["h1 greet", "h1 wait"]
    assert processed == {"h1"}
    assert all(str(ansible_worker.SHIM) in c for c in _commands(tmp_path))
    assert not _children(worker.process.pid), "the run's process was not reaped"
    # Private: whoever can connect can run ansible-playbook as the controller's user.
    assert stat.S_IMODE(worker.directory.stat().st_mode) == 0o700


def test_a_failed_task_fails_the_run_through_the_worker(worker, host, tmp_path) -> None:
    result, _ = _play(tmp_path, host, pause="not-a-number")
    assert result.failed and "h1" in result.failed
    assert "sleep" in result.failed["h1"] or "rc" in result.failed["h1"], result.failed


def test_a_cancelled_run_leaves_no_process_behind(worker, host, tmp_path) -> None:
    waiting = threading.Event()

    def cancel() -> Exception | None:
        return Failed("cancelled by the test") if waiting.is_set() and _sleeping() else None

    def on_task(_host: str, task: str) -> None:
        if task == "wait":
            waiting.set()

    began = time.monotonic()
    with pytest.raises(Failed, match="cancelled by the test"):
        _play(tmp_path, host, pause=SLEEP, cancel=cancel, on_task=on_task)
    assert time.monotonic() - began < 30, "the run was not stopped"
    assert _until(lambda: not _sleeping()), f"the run's command lives on: {_sleeping()}"
    assert _until(lambda: not _children(worker.process.pid)), "the run's ansible-playbook lives on"
    assert worker.alive(), "cancelling a run must not end the worker"


# SIGKILL: the worker cannot end its run; its shim, which sees it go, does.
@pytest.mark.parametrize("how", ["controller gone", "SIGTERM", "SIGKILL"])
def test_the_worker_ending_ends_its_runs(worker, host, tmp_path, how) -> None:
    outcome: list[object] = []

    def play() -> None:
        try:
            outcome.append(_play(tmp_path, host, pause=SLEEP))
        except Exception as exc:
            outcome.append(exc)

    runner = threading.Thread(target=play, daemon=True)
    runner.start()
    assert _until(_sleeping), "the run never reached its command"
    if how == "SIGTERM":
        worker.process.terminate()
    elif how == "SIGKILL":
        worker.process.kill()
    else:
        ansible_worker.stop()  # the worker's stdin closes, as when the controller dies
    assert _until(lambda: not _sleeping()), f"the run's command lives on: {_sleeping()}"
    runner.join(30)
    assert outcome and not (isinstance(outcome[0], tuple) and outcome[0][0].ok), outcome


def test_a_run_whose_configuration_differs_starts_cold(
    worker, host, tmp_path, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("ANSIBLE_FORKS", "3")
    with caplog.at_level(logging.INFO, logger="sitectl.engine"):
        result, _ = _play(tmp_path, host)
        said = "a shared run starts cold: its environment differs in ANSIBLE_FORKS"
        assert _until(lambda: said in caplog.messages), caplog.messages
    assert result.ok == frozenset({"h1"}), result


def test_without_a_worker_the_shim_is_ansible_playbook(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(ansible_worker.SHIM), "ansible-playbook", "--version"],
        env={**os.environ, ansible_worker.WORKER_VAR: str(tmp_path / "no-such.sock")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ansible-playbook [core "), done.stdout


def test_a_worker_start_removes_what_a_killed_controller_left() -> None:
    # 999999999: above any pid this kernel hands out, so no such process lives.
    left = Path(tempfile.gettempdir()) / f"{ansible_worker.DIR_PREFIX}999999999-left"
    left.mkdir()
    try:
        warm_worker()
        assert not left.exists(), "a killed controller's worker directory stays behind"
    finally:
        ansible_worker.stop()
        shutil.rmtree(left, ignore_errors=True)
