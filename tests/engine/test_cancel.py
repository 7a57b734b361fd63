"""A shared playbook run stops the moment its lease is gone, an abort is asked or its
step's deadline passes: ansible-playbook and whatever it started are killed as a process
group, not left to run until the next gate (issue 17, item 3).

The lab's MTA stop command is wrapped to keep a ledger of task runs (step, epoch, what it
did) and, the first time only, to hang before it stops anything: a long host step, as a
hung NFS mount or a stuck init script makes one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import eventually
from tests.engine.conftest import SITECTL, Cluster

pytestmark = [pytest.mark.lab, pytest.mark.timeout(600)]

STEP = "disable-application/dc1/mta"


def _hanging_topology(
    cluster: Cluster, tmp_path: Path, *, every_time: bool = False, step_timeout: str | None = None
) -> tuple[Path, Path]:
    """The lab topology with the MTA's stop and start commands keeping a ledger; its stop
    hangs the first time (or every time): (topology file, ledger)."""
    ledger, flag = tmp_path / "ledger", tmp_path / "hung-once"
    data = yaml.safe_load(cluster.topology_file.read_text())
    commands = data["roles"]["mta"]["commands"]
    hang = "sleep 300" if every_time else f"[ -e {flag} ] || {{ touch {flag}; sleep 300; }}"
    for action in ("start", "stop"):
        note = f'echo "$SITECTL_STEP $SITECTL_EPOCH {action}-%s $(date +%%s.%%N)" >> {ledger}'
        wrapped = [note % "begin"]
        if action == "stop":
            wrapped.append(hang)
        wrapped += [note % "go", commands[action]]
        commands[action] = "; ".join(wrapped)
    if step_timeout is not None:
        data["policy"]["step_timeout"] = step_timeout
    # Beside the lab's own: relative paths (inventory, keys) resolve the same way.
    path = cluster.topology_file.with_name(f"topology-{tmp_path.name}.yaml")
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path, ledger


def _lines(ledger: Path) -> list[list[str]]:
    return [line.split() for line in ledger.read_text().splitlines()] if ledger.exists() else []


def _processes() -> list[tuple[int, int, int, str, bytes]]:
    """(pid, parent, process group, state, command line) of every process."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        state, ppid, pgid = stat[stat.rindex(")") + 2 :].split()[:3]
        found.append((int(proc.name), int(ppid), int(pgid), state, cmdline))
    return found


def _playbooks_under(pid: int) -> list[int]:
    """The ansible-playbook processes `pid` started (ansible-runner's children)."""
    return [p for p, ppid, _, _, cmd in _processes() if ppid == pid and b"ansible-playbook" in cmd]


def _group(pgid: int) -> list[int]:
    """Live processes of process group `pgid` (zombies are dead)."""
    return [p for p, _, group, state, _ in _processes() if group == pgid and state != "Z"]


def _start(cluster: Cluster, topology: Path, reason: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [SITECTL, "switchover", "--to", "dc2", "--yes", "--reason", reason],
        env=cluster.env(SITECTL_CONFIG=str(topology)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _hung_in_stop(engine: subprocess.Popen[str], ledger: Path) -> int:
    """Wait until the MTA's stop hangs in `engine`'s playbook run; its process group."""

    def stop_began() -> bool:
        # Refused or failed before the stop: say why now (pytest.fail is not an Exception,
        # so `eventually` does not take it for a probe still converging).
        if engine.poll() is not None:
            out, err = engine.communicate()
            pytest.fail(
                f"the switchover ended ({engine.returncode}) before the MTA's stop:\n{err}{out}"
            )
        return any(line[2] == "stop-begin" for line in _lines(ledger))

    eventually(stop_began, "the MTA's stop started", within=120)
    playbooks = eventually(lambda: _playbooks_under(engine.pid), "ansible-playbook runs")
    return os.getpgid(playbooks[0])


def _stop(engine: subprocess.Popen[str]) -> None:
    if engine.poll() is None:
        engine.send_signal(signal.SIGCONT)
        engine.kill()
        engine.wait()


def test_a_frozen_leaders_task_is_stopped_on_the_host_by_its_successor(
    cluster: Cluster, tmp_path
) -> None:
    topology, ledger = _hanging_topology(cluster, tmp_path)
    stale = _start(cluster, topology, "frozen inside a host step")
    try:
        group = _hung_in_stop(stale, ledger)
        stale.send_signal(signal.SIGSTOP)  # the engine only: its playbook runs on
        old_epoch = _lines(ledger)[0][1]

        # Its session expires; a successor takes over and finishes the move.
        deadline = time.monotonic() + 90
        while (
            successor := cluster.sitectl("resume", "--yes", SITECTL_CONFIG=str(topology))
        ).returncode == 3:
            assert time.monotonic() < deadline, successor.stderr
            time.sleep(0.5)
        assert successor.returncode == 0, successor.stderr + successor.stdout
        cluster.assert_active("dc2")
        # The successor's first task on the MTA stopped the stale task still running on
        # the host (orchestrator/playbooks/library/sitectl_epoch.py), so the stale run's playbook has
        # ended before its engine wakes.
        eventually(lambda: not _group(group), "the stale run's playbook ends", within=10)
        successors_first = next(n for n, line in enumerate(_lines(ledger)) if line[1] != old_epoch)

        stale.send_signal(signal.SIGCONT)
        _, stderr = stale.communicate(timeout=60)
    finally:
        _stop(stale)

    # Woken, the stale engine finds its lease gone and stops, changing nothing more.
    assert stale.returncode == 1, stderr
    assert "stopped:" in stderr, stderr
    late = [line for line in _lines(ledger)[successors_first:] if line[1] == old_epoch]
    assert late == [], f"the stale run went on after its successor's first task: {late}"
    assert [line[2] for line in _lines(ledger) if line[1] == old_epoch] == ["stop-begin"]
    cluster.assert_active("dc2")
    assert cluster.status()["operation"]["status"] == "succeeded"


def test_an_abort_kills_the_playbook_at_once_and_the_operation_goes_on_later(
    cluster: Cluster, tmp_path
) -> None:
    topology, ledger = _hanging_topology(cluster, tmp_path)
    engine = _start(cluster, topology, "aborted inside a host step")
    try:
        group = _hung_in_stop(engine, ledger)
        asked = cluster.sitectl("abort", "--now", "--wait", "0", SITECTL_CONFIG=str(topology))
        assert asked.returncode == 0, asked.stderr
        requested = time.monotonic()
        eventually(lambda: not _group(group), "the playbook is gone", within=5)
        killed_after = time.monotonic() - requested
        _, stderr = engine.communicate(timeout=60)
    finally:
        _stop(engine)

    assert killed_after < 1.0, f"the playbook ran {killed_after:.2f} s after the abort"
    assert engine.returncode == 1, stderr
    op = cluster.status()["operation"]
    assert op["status"] == "aborted"
    assert "aborted by" in op["message"] and "dc1" in op["message"], op["message"]
    assert [line[2] for line in _lines(ledger)] == ["stop-begin"], "nothing after the kill"
    # The operator goes forward: a new switchover finishes what the aborted one began.
    again = cluster.sitectl(
        "switchover",
        "--to",
        "dc2",
        "--yes",
        "--reason",
        "after abort",
        SITECTL_CONFIG=str(topology),
    )
    assert again.returncode == 0, again.stderr + again.stdout
    cluster.assert_active("dc2")


def test_a_hung_host_command_fails_its_step_naming_its_timeout(cluster: Cluster, tmp_path) -> None:
    topology, ledger = _hanging_topology(cluster, tmp_path, every_time=True, step_timeout="8s")
    started = time.monotonic()
    engine = _start(cluster, topology, "a host command hangs")
    try:
        group = _hung_in_stop(engine, ledger)
        _, stderr = engine.communicate(timeout=120)
    finally:
        _stop(engine)
    took = time.monotonic() - started

    assert engine.returncode == 1, stderr
    assert not _group(group), "the hung command was killed with its playbook"
    op = cluster.status()["operation"]
    assert op["status"] == "failed" and op["failed_step"] == STEP
    assert f"step {STEP} failed" in op["message"]
    assert "did not finish within 8 s" in op["message"], op["message"]
    assert "sitectl resume" in op["message"]  # the usual sentence: resumable
    assert took < 60, f"the operation took {took:.0f} s for a step bounded by 8 s"
