"""What the status page reads besides the Board (controller/pagesource.py): the operation
in its plan's order from the store, the drill reports on this host (a report served only
by the id the listing gives, never through a link), the reads and sweeps that run only
while someone looks, and the controller's sweep on the Board at the page's pace."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.checks.result import CheckResult, Status, Sweep
from orchestrator.config import Topology, load_topology
from orchestrator.controller import pagesource
from orchestrator.controller.http import Board, Metrics
from orchestrator.controller.monitor import VIEWED_EVERY_S, Monitor
from orchestrator.controller.pagesource import PageSource, Watched
from orchestrator.controller.pageview import ClusterRead
from orchestrator.drill import report
from orchestrator.errors import Unavailable
from orchestrator.plan import ObservedState, build_plan
from orchestrator.records import ApprovalRequest, Mode, StepRecord, StepStatus
from tests.drill.recorded import drill, leg
from tests.unit.engine_fakes import MemoryStore, operation_record

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories/example-zimbra/topology.yaml"
NOW = 1_790_000_000.0


@pytest.fixture
def topo(tmp_path: Path) -> Topology:
    return load_topology(EXAMPLE).model_copy(update={"local_state": str(tmp_path / "state")})


class _Client:
    connected = True


class _State:
    def running(self, leader: str | None) -> list[dict[str, Any]]:
        return [{"site": "dc1", "identity": "dc1 x", "leader": leader == "dc1 x"}]


def source(topo: Topology, store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> PageSource:
    monkeypatch.setattr(pagesource, "current_leader", lambda client, paths: "dc1 x")
    return PageSource(  # type: ignore[arg-type]
        topo, _Client(), store, _State(), clock=lambda: NOW_READ
    )


def running_switchover(topo: Topology) -> tuple[MemoryStore, list[str]]:
    plan = build_plan(topo, ObservedState(active_site="dc1"), Mode.SWITCHOVER, "dc2")
    op = operation_record(plan)
    ids = [s.id for s in plan.steps()]
    store = MemoryStore(current=op.id)
    store.ops[op.id] = (op, 0)
    store.step_records[op.id] = {
        ids[0]: (StepRecord(ids[0], StepStatus.DONE, 1, NOW - 9, NOW - 8), 1),
        ids[1]: (StepRecord(ids[1], StepStatus.RUNNING, 1, NOW - 8), 0),
    }
    store.asked[ids[1]] = ApprovalRequest(ids[1], NOW - 8, "say yes")
    store.asked["gone"] = ApprovalRequest("gone", NOW - 20, "answered long ago")
    return store, ids


def test_the_operation_is_read_in_its_plans_order(
    topo: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, ids = running_switchover(topo)
    read = source(topo, store, monkeypatch).read(NOW)
    assert read.operation is not None and read.operation.planned and read.operation.in_progress
    assert [s.id for s in read.operation.steps] == ids
    statuses = [s.status for s in read.operation.steps]
    assert statuses[:2] == ["done", "running"] and set(statuses[2:]) == {"pending"}
    # Only the approval its running step waits for.
    assert [r.step_id for r in read.operation.waiting] == [ids[1]]
    assert [row.id for row in read.history] == list(store.ops)
    assert read.controllers == ({"site": "dc1", "identity": "dc1 x", "leader": True},)

    # A topology that no longer gives the operation's plan: only the steps that started.
    changed = topo.model_copy(update={"custom_steps": ()})
    read = source(changed, store, monkeypatch).read(NOW)
    assert read.operation is not None and not read.operation.planned
    assert [s.id for s in read.operation.steps] == ids[:2]


def test_with_nothing_recorded_there_is_no_operation(
    topo: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    read = source(topo, MemoryStore(), monkeypatch).read(NOW)
    assert (read.operation, read.history, read.active_site) == (None, (), None)


def test_drill_reports_are_served_by_their_listed_id_only(
    topo: Topology, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    found = source(topo, MemoryStore(), monkeypatch)
    record = drill(leg("there", "dc1", "dc2", 0))
    paths = report.write_reports(record, found.drills_root / record.id)
    assert found.report(record.id) == paths.html.read_bytes()
    assert found.report("../" + record.id) is None
    assert found.report("nothing") is None
    (row,) = found.read(NOW).history
    assert (row.kind, row.id) == ("drill", record.id)
    # A link planted where the report was: never followed.
    elsewhere = tmp_path / "secret.html"
    elsewhere.write_text("not a report")
    paths.html.unlink()
    paths.html.symlink_to(elsewhere)
    assert found.report(record.id) is None


def test_a_loop_runs_only_while_someone_looks() -> None:
    runs: list[float] = []
    loop = Watched("test", lambda: runs.append(time.monotonic()), every=0.01, idle_after=0.3)
    try:
        time.sleep(0.1)
        assert runs == []  # nobody asked: no thread, no run
        loop.want()
        assert loop.ran.wait(5)
        time.sleep(0.6)  # past idle_after: it goes to sleep
        settled = len(runs)
        time.sleep(0.3)
        assert len(runs) == settled
        loop.want()  # a page view wakes it
        deadline = time.monotonic() + 5
        while len(runs) == settled and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(runs) > settled
    finally:
        loop.stop()


def test_the_controllers_sweep_goes_on_the_board_and_keeps_pace_with_the_page(
    topo: Topology,
) -> None:
    swept: list[str] = []

    def sweeper(t: Topology) -> Sweep:
        swept.append(t.active_site)
        return Sweep((CheckResult("dns", "dc1", "ns", Status.OK, ""),), 0.5)

    board = Board()
    store = MemoryStore()
    monitor = Monitor(topo, store, Metrics("dc1"), lambda: "dc2", sweep_fn=sweeper, board=board)
    monitor.sweep_once()
    assert swept == ["dc2"]  # judged against the active site as recorded
    health = board.read()["health"]
    assert health["results"][0]["target"] == "ns" and abs(health["at"] - time.time()) < 5
    # Nobody looks: the topology's pace; a view: the page's refresh, for a while.
    assert monitor._every() == topo.policy.health_every
    monitor.viewed()
    assert monitor._every() == min(VIEWED_EVERY_S, topo.policy.health_every)


def test_a_failed_read_keeps_the_last_one_and_says_why(
    topo: Topology, monkeypatch: pytest.MonkeyPatch
) -> None:
    store, _ = running_switchover(topo)
    found = source(topo, store, monkeypatch)
    found._read_once()
    first = found.latest(wait=0)
    assert first is not None and first.operation is not None and not first.error
    _Client.connected = False
    try:
        found._read_once()
    finally:
        _Client.connected = True
    kept = found.latest(wait=0)
    assert kept is not None and kept.operation == first.operation and kept.at == first.at
    assert kept.error == "this controller has no ZooKeeper session"
    nothing = source(topo, store, monkeypatch)
    monkeypatch.setattr(store, "current_operation", _unavailable)
    nothing._read_once()
    assert nothing.latest(wait=0) == ClusterRead(NOW_READ, None, error="ZooKeeper is away")


NOW_READ = 5.0


def _unavailable() -> str:
    raise Unavailable("ZooKeeper is away")
