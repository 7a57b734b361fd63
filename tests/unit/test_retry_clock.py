"""The executor's retries are bounded by the step's time limit on the executor's own
clock: a test's fake clock and sleep bound them exactly, and nothing really sleeps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from orchestrator.audit import AuditLog
from orchestrator.config import Topology, load_topology
from orchestrator.engine.executor import Executor
from orchestrator.errors import Unavailable
from orchestrator.plan import Action, assumed_state, build_plan
from orchestrator.plan.model import Step
from tests.unit.engine_fakes import FakeFence, MemoryStore, ScriptedHandler

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(EXAMPLE)


@dataclass
class FakeTime:
    now: float = 5000.0
    naps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.naps.append(seconds)
        self.now += seconds


def _executor(topo: Topology, tmp_path: Path, fake: FakeTime, attempts: int) -> Executor:
    plan = build_plan(topo, assumed_state(topo), "failover", "dc2")
    return Executor(
        plan=plan,
        topology=topo,
        store=MemoryStore(),
        lease=FakeFence(),
        handlers=dict.fromkeys(Action, ScriptedHandler()),
        audit=AuditLog(tmp_path / "audit.jsonl"),
        artifacts=tmp_path,
        clock=fake.clock,
        sleep=fake.sleep,
        attempts=attempts,
    )


def _step(executor: Executor, if_unreachable: str) -> Step:
    return next(s for s in executor.plan.steps() if s.if_unreachable == if_unreachable)


@pytest.mark.parametrize("if_unreachable", ["skip", "fail"])
def test_retries_stop_at_the_steps_bound_on_the_executors_clock(
    topo, tmp_path, if_unreachable
) -> None:
    fake = FakeTime()
    # Far more attempts than the bound allows: only the time limit can stop them.
    executor = _executor(topo, tmp_path, fake, attempts=100_000)
    step = _step(executor, if_unreachable)
    bound = executor._bound(step)
    calls: list[float] = []

    def unreachable() -> None:
        calls.append(fake.now)
        raise Unavailable("dc1-mailbox1 did not answer")

    started = time.monotonic()
    with pytest.raises(Unavailable):
        executor.retrying(step, unreachable)

    # The one before last came before the bound; the wait after it (at most 5 s)
    # reached the bound, and the attempt then was the last.
    assert calls[-2] - 5000.0 < bound <= calls[-1] - 5000.0 < bound + 5
    assert fake.now == calls[-1], "no wait after the last attempt"
    assert 1 < len(calls) < 100_000
    assert len(fake.naps) == len(calls) - 1, "every wait went through the injected sleep"
    assert time.monotonic() - started < 5, "nothing really slept"


def test_verify_polls_stop_at_the_bound_on_the_executors_clock(topo, tmp_path) -> None:
    fake = FakeTime()
    executor = _executor(topo, tmp_path, fake, attempts=3)
    step = _step(executor, "skip")  # bound 15 s: reached long before the 100 polls
    bound = executor._bound(step)
    polls: list[float] = []

    def not_yet() -> None:
        polls.append(fake.now)
        raise Unavailable("the MTA does not answer yet")

    with pytest.raises(Unavailable):
        executor.verifying(step, not_yet)

    assert polls[-2] - 5000.0 < bound <= polls[-1] - 5000.0 < bound + 2
    assert len(polls) < 100
