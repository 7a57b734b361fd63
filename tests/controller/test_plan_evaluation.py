"""The leader's plan evaluation, without servers: when one is due (a table), what
/metrics says of its result (valid Prometheus text, a series per check with problems,
gone once fixed), and the watch that runs it on the topology file as it is now."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config import Topology, load_topology
from orchestrator.controller.evaluation import FIRST_AFTER_S, PlanWatch, standby_of, when_due
from orchestrator.controller.hooks import Hooks
from orchestrator.controller.http import Metrics
from orchestrator.evaluate.findings import Evaluation, evaluation, ok, problem

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "inventories" / "example-zimbra"
EVERY = 1800.0


@pytest.mark.parametrize(
    ("led_since", "last_at", "last_digest", "now", "digest", "why"),
    [
        (0.0, None, "a", 10.0, "a", None),  # a new leader waits a little first
        (0.0, None, "a", FIRST_AFTER_S, "a", "leader for 60 s, first evaluation"),
        (0.0, 100.0, "a", 200.0, "a", None),
        (0.0, 100.0, "a", 100.0 + EVERY, "a", "1800 s since the last evaluation"),
        (0.0, 100.0, "a", 101.0, "b", "the topology file changed"),
        (0.0, 100.0, "a", 101.0, None, None),  # unreadable now: not a change
        (0.0, 100.0, None, 101.0, "b", None),  # unreadable then: nothing to compare
    ],
)
def test_when_an_evaluation_is_due(
    led_since: float,
    last_at: float | None,
    last_digest: str | None,
    now: float,
    digest: str | None,
    why: str | None,
) -> None:
    assert when_due(led_since, last_at, last_digest, now, digest, EVERY) == why


def test_a_short_interval_is_also_the_first_wait() -> None:
    assert when_due(0.0, None, None, 5.0, None, 5.0) == "leader for 5 s, first evaluation"


def _families(metrics: Metrics) -> dict[str, list[tuple[dict[str, str], float]]]:
    """The exposition parsed as Prometheus does: it must be valid text."""
    text = metrics.render().decode()
    return {
        family.name: [(dict(s.labels), s.value) for s in family.samples]
        for family in text_string_to_metric_families(text)
        if family.name.startswith("sitectl_plan")
    }


def test_metrics_carry_the_latest_evaluation_and_drop_fixed_problems() -> None:
    metrics = Metrics("dc1")
    bad = evaluation(
        "dc2",
        [
            problem("tsig", "lab.internal.", "no server accepts it"),
            problem("ansible", "dc2-mta", "host key changed"),
            problem("ansible", "dc2-dns", "host key changed"),
            ok("zookeeper", "/sitectl", "fine"),
        ],
        1_800_000_000.0,
    )
    metrics.evaluation(bad)
    seen = _families(metrics)
    assert seen["sitectl_plan_ready"] == [({"to": "dc2"}, 0.0)]
    assert seen["sitectl_plan_evaluated_timestamp_seconds"] == [({"to": "dc2"}, 1.8e9)]
    assert sorted(seen["sitectl_plan_problem"], key=str) == [
        ({"to": "dc2", "check": "ansible"}, 2.0),
        ({"to": "dc2", "check": "tsig"}, 1.0),
    ]

    metrics.evaluation(evaluation("dc2", [problem("tsig", "lab.internal.", "still")], 1.9e9))
    assert _families(metrics)["sitectl_plan_problem"] == [({"to": "dc2", "check": "tsig"}, 1.0)]

    metrics.evaluation(evaluation("dc2", [ok("tsig", "lab.internal.", "accepted")], 2.0e9))
    seen = _families(metrics)
    assert seen["sitectl_plan_ready"] == [({"to": "dc2"}, 1.0)]
    assert seen["sitectl_plan_problem"] == []


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _copy(tmp_path: Path) -> Path:
    for name in ("topology.yaml", "hosts.yml"):
        shutil.copy(EXAMPLE / name, tmp_path / name)
    for path in EXAMPLE.iterdir():
        if path.suffix in {".key", ".secret", ".token"} or path.is_dir():
            target = tmp_path / path.name
            if path.is_dir():
                shutil.copytree(path, target)
            else:
                shutil.copy2(path, target)
    return tmp_path / "topology.yaml"


def test_the_watch_evaluates_as_leader_then_on_a_change_of_the_file(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    topo = load_topology(path)
    asked: list[tuple[str, str]] = []

    def fake(t: Topology, to_site: str) -> Evaluation:
        asked.append((t.active_site, to_site))
        return evaluation(to_site, [ok("zookeeper", "/", "fine")], 1.0)

    clock = Clock()
    watch = PlanWatch(topo, fake, clock=clock)
    assert watch.due() is None  # just became leader
    clock.now += FIRST_AFTER_S
    assert watch.due() == "leader for 60 s, first evaluation"
    assert watch.evaluate_now("dc1") is not None
    assert asked == [("dc1", "dc2")] and watch.due() is None

    # The file changes into one that no longer validates: that is the one problem.
    path.write_text(path.read_text().replace("active_site: dc1", "active_site: witness"))
    assert watch.due() == "the topology file changed"
    result = watch.evaluate_now("dc1")
    assert result is not None and not result.ready
    (only,) = result.problems
    assert only.check == "topology" and "does not validate" in only.reason
    assert asked == [("dc1", "dc2")]  # no check ran on an invalid file
    assert watch.due() is None  # evaluated as it is: due again at the next change

    watch.stood_down()
    assert watch.due() is None  # a new leadership waits again


def test_the_standby_is_the_other_datacenter() -> None:
    topo = load_topology(EXAMPLE / "topology.yaml")
    assert standby_of(topo, "dc1") == "dc2" and standby_of(topo, "dc2") == "dc1"


@pytest.mark.parametrize("event", ["plan-ready", "plan-not-ready"])
def test_the_plan_events_may_have_hooks(event: str) -> None:
    assert Hooks.parse([f"{event}=/bin/true"], 5.0).commands == {event: "/bin/true"}
