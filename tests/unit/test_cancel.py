"""Cancelling a running playbook (issue 17, item 3): why the watch says stop (a table,
no servers), and real ansible-playbook runs killed for an abort --now and for a step's
deadline, with the executor's in-memory store (tests/unit/engine_fakes.py)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.adapters.ansible import PlaybookCall
from orchestrator.engine.cancel import ABORT_POLL_S, AbortRequested, DeadlinePassed, Watch
from orchestrator.engine.records import OpStatus, StepStatus
from orchestrator.errors import LeaseLost
from orchestrator.plan.model import Step
from tests.unit.test_batch import MarkStep, _playbook_steps, _run, _status, local, topo

__all__ = ["local", "topo"]  # the fixtures, shared with test_batch


@dataclass
class Lease:
    trouble: str | None = None

    def interrupted(self) -> str | None:
        return self.trouble


@dataclass
class Clock:
    now: float = 100.0

    def __call__(self) -> float:
        return self.now


def _watch(lease: Lease, clock: Clock, aborts: list[str | None]) -> Watch:
    return Watch(lease, lambda: aborts[0], session_timeout=4.0, clock=clock)  # type: ignore[arg-type]


def test_nothing_stops_a_run_that_may_go_on() -> None:
    clock = Clock()
    watch = _watch(Lease(), clock, [None])
    check = watch.check()
    for _ in range(5):
        clock.now += 1.0  # asked every second: no freeze
        assert check() is None
    assert watch.cancelled is None


@pytest.mark.parametrize(
    ("trouble", "expected", "sentence"),
    [
        ("lease", LeaseLost, "ZooKeeper connection suspended"),
        ("frozen", LeaseLost, "this process was frozen for 9 s, past the ZooKeeper session"),
        ("abort", AbortRequested, "ops@console asked to abort"),
        ("deadline", DeadlinePassed, "did not finish within 30 s, its timeout"),
    ],
)
def test_each_reason_stops_every_lane_for_the_same_error(trouble, expected, sentence) -> None:
    clock, lease, aborts = Clock(), Lease(), [None]
    watch = _watch(lease, clock, aborts)
    main, side = watch.check(), watch.check()
    assert main() is None and side() is None
    watch.going(0, "disable-application/dc1/mta", 30.0)
    if trouble == "lease":
        lease.trouble = "ZooKeeper connection suspended: stopping before any further change"
    elif trouble == "frozen":
        clock.now += 9.0  # SIGSTOP past the 4 s session timeout, then SIGCONT
    elif trouble == "abort":
        aborts[0] = "ops@console"
        clock.now += ABORT_POLL_S
    else:
        clock.now += 31.0 if trouble == "deadline" else 0.0
        main = watch.check()  # (a fresh check: a 31 s gap would read as a freeze)
    error = main()
    assert isinstance(error, expected) and sentence in str(error)
    assert side() is error and watch.cancelled is error, "every lane stops for the first reason"
    if trouble == "deadline":
        assert isinstance(error, DeadlinePassed) and error.step_id == "disable-application/dc1/mta"


def test_a_step_over_clears_its_deadline_and_the_abort_is_read_sparingly() -> None:
    clock, reads = Clock(), []

    def aborts() -> str | None:
        reads.append(clock.now)
        return None

    watch = Watch(Lease(), aborts, session_timeout=4.0, clock=clock)  # type: ignore[arg-type]
    check = watch.check()
    watch.going(1, "mount/dc2/mailstore", 2.0)
    watch.gone(1)
    for _ in range(10):
        clock.now += 0.1
        assert check() is None
    assert len(reads) <= 10 * 0.1 / ABORT_POLL_S + 1


SLOW = """- name: "slow {{ mark }}"
  hosts: "{{ sitectl_hosts | default('all') }}"
  gather_facts: false
  tasks:
    - name: hang
      ansible.builtin.shell: "echo $$ >> {{ mark }}.pid; sleep 60; echo {{ inventory_hostname }} >> {{ mark }}"
"""


@dataclass
class SlowStep(MarkStep):
    """A playbook step whose command hangs for a minute (a hung NFS mount, say)."""

    def call(self, step: Step, ctx: Any) -> PlaybookCall:
        (self.root / "slow.yml").write_text(SLOW)
        return PlaybookCall(
            playbook=self.root / "slow.yml", hosts=("h1",), extravars={"mark": str(self.mark(step))}
        )


def _alive(pid_file: Path) -> list[int]:
    pids = [int(p) for p in pid_file.read_text().split()] if pid_file.exists() else []
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def test_abort_now_kills_the_shared_run_at_once_and_leaves_the_step_running(
    local, tmp_path
) -> None:
    handler = SlowStep(tmp_path, hosts={})
    run = _run(local, tmp_path, handler)
    first = _playbook_steps(run.units)[0]

    def abort_now_as_it_starts(step: Step, ctx: Any) -> None:
        handler.started.append(step.id)
        run.store.request_abort(run.op.id, "ops@console", now=True)

    handler.starting = abort_now_as_it_starts  # type: ignore[method-assign]
    started = time.monotonic()
    result = run.executor.run(run.op.id)
    took = time.monotonic() - started

    assert result.status is OpStatus.ABORTED
    assert (result.message or "").startswith("aborted by ops@console")
    assert took < 20, f"the hung step was waited for ({took:.0f} s)"
    assert _status(run.store, run.op)[first.id].status is StepStatus.RUNNING, "cut off, not done"
    assert not handler.mark(first).exists()
    assert _alive(Path(f"{handler.mark(first)}.pid")) == [], "its command was killed too"


def test_a_step_past_its_deadline_fails_naming_its_timeout(local, tmp_path) -> None:
    quick = local.model_copy(
        update={"policy": local.policy.model_copy(update={"step_timeout": 3.0})}
    )
    handler = SlowStep(tmp_path, hosts={})
    run = _run(quick, tmp_path, handler)
    first = _playbook_steps(run.units)[0]

    started = time.monotonic()
    result = run.executor.run(run.op.id)
    took = time.monotonic() - started

    assert result.status is OpStatus.FAILED and result.failed_step == first.id
    record = _status(run.store, run.op)[first.id]
    assert record.status is StepStatus.FAILED
    assert record.detail == "did not finish within 3 s, its timeout: its playbook run was killed"
    assert f"step {first.id} failed: did not finish within 3 s" in (result.message or "")
    assert took < 30, f"the operation took {took:.0f} s for a step bounded by 3 s"
    assert _alive(Path(f"{handler.mark(first)}.pid")) == [], "its command was killed too"
