"""The monitoring kit: the alerting rules pass `promtool check rules` and their own
`promtool test rules` (each alert firing and not firing), the controller's exposition
passes `promtool check metrics`, and every PromQL expression of the rules and of the
Grafana dashboard reads only metric names the controller's /metrics exports (here from
its registry fed one representative sweep, history and evaluation; the lab test
tests/controller/test_metrics_lab.py checks them against a running controller's scrape).
"""

from __future__ import annotations

import pytest

from orchestrator.checks.readiness import Readiness
from orchestrator.checks.result import CheckResult, Status, Sweep
from orchestrator.controller.decision import SiteView
from orchestrator.controller.http import Metrics
from orchestrator.controller.ledger import Current, Ledger
from orchestrator.coordination.ticket import Ticket
from orchestrator.evaluate.findings import Evaluation, Finding, Outcome
from tests.monitoring import (
    RULES,
    RULES_TEST,
    dashboard_expressions,
    exported_names,
    metric_names,
    promtool,
    rule_expressions,
)

OK, DEGRADED = Status.OK, Status.DEGRADED


def representative() -> Metrics:
    """A controller's metrics with every kind of series present: a sweep of each system
    that has gauges of its own, the history, an evaluation with a problem, a ticket."""
    metrics = Metrics("dc1")
    sweep = Sweep(
        (
            CheckResult("ldap", "dc2", "ldap://ldap1.dc2:389", OK, "", {"sid_1_lag_seconds": 2.5}),
            CheckResult(
                "mirrors", "dc2", "mirror mailstore", DEGRADED, "lags", {"lag_seconds": 400}
            ),
            CheckResult(
                "object-store",
                "dc1",
                "bucket mail-blobs@dc1",
                OK,
                "",
                {"replication_lag_seconds": 3},
            ),
            CheckResult("parity", None, "setting retention", OK, "", {"equal": 1.0}),
            CheckResult("dns", "dc2", "zone example.test. at 10.0.2.1:53", OK, "", {}),
        ),
        seconds=1.5,
    )
    verdict = Readiness(
        "dc2", False, {"volume": 400.0, "ldap": 2.5, "object_store": None}, {"volume": 300.0}
    )
    metrics.swept(sweep, verdict, 1_700_000_000.0)
    metrics.limits({"volume": 300.0, "ldap": 60.0, "object_store": 900.0})
    metrics.active(["dc1", "dc2"], "dc1")
    metrics.ledger(
        False,
        Ledger(
            operations={
                ("switchover", "succeeded", "drill"): 2,
                ("failover", "running", "automatic"): 1,
            },
            last_operation=1_700_000_100.0,
            last_automatic_failover=1_700_000_100.0,
            current=Current("op-1", "failover", "running", 1_700_000_100.0),
            drills={"passed": 1, "failed": 1},
            last_drill=1_690_000_000.0,
            last_passed_drill=1_680_000_000.0,
            drill_rto=48.0,
            drill_rpo=0.0,
        ),
        1_700_000_200.0,
    )
    metrics.observed({"dc1": SiteView("down", 3), "dc2": SiteView("up")}, 0.2)
    metrics.evaluation(
        Evaluation(
            "dc2",
            1_700_000_000.0,
            (Finding("playbook", "volume.yml", Outcome.PROBLEM, "does not exist"),),
        )
    )
    ticket = Ticket(holder="dc1", epoch=1, granted_at=1.0, renewed_at=1.0, ttl=8.0)
    metrics.ticket(["dc1", "dc2"], ticket, 5.0)
    return metrics


def test_the_rules_pass_promtool_check_rules() -> None:
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(rule_expressions())} rules found" in checked.stdout, checked.stdout


def test_each_alert_fires_and_stays_quiet_as_its_test_says() -> None:
    tested = promtool("test", "rules", str(RULES_TEST))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # Every alert of the rules file is tested, and none that is not there.
    text = RULES_TEST.read_text()
    assert {a for a in rule_expressions() if f"alertname: {a}\n" not in text} == set()


def test_the_controllers_exposition_passes_promtool_check_metrics() -> None:
    exposition = representative().render().decode()
    checked = promtool("check", "metrics", stdin=exposition)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for line in (
        'sitectl_ldap_replication_lag_seconds{master="ldap://ldap1.dc2:389",sid="1"} 2.5',
        'sitectl_mirror_lag_seconds{volume="mailstore"} 400.0',
        'sitectl_object_store_replication_lag_seconds{bucket="mail-blobs"} 3.0',
        'sitectl_config_parity_equal{setting="retention"} 1.0',
        'sitectl_active_site{site="dc1"} 1.0',
        'sitectl_rpo_limit_seconds{kind="volume"} 300.0',
        'sitectl_controller_estimated_loss_seconds{kind="volume"} 400.0',
        'sitectl_operation_unfinished_since_timestamp_seconds{mode="failover",status="running"}',
        "sitectl_last_passed_drill_timestamp_seconds 1.68e+09",
        "sitectl_paused 0.0",
    ):
        assert line in exposition, line
    # Unknown loss has no series (check_up says why), and the controller's own split
    # brain gauge is the only one of that name.
    assert 'estimated_loss_seconds{kind="object_store"}' not in exposition
    assert exposition.count("# TYPE sitectl_split_brain gauge") == 1


def test_metric_names_reads_names_not_labels_functions_or_keywords() -> None:
    expr = (
        'count by (site) (a_down{job=~"$job",x="max(y)"} == 1 and on (instance, site) b) >= 2'
        " or absent(c) or time() - max(d[5m] offset 1h) > 90 * 86400"
    )
    assert metric_names(expr) == {"a_down", "b", "c", "d"}


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_expression_reads_only_what_the_controller_exports(source: str) -> None:
    exported = exported_names(representative().render().decode())
    expressions = rule_expressions() if source == "rules" else dashboard_expressions()
    assert expressions
    unknown = {
        where: sorted(metric_names(expr) - exported)
        for where, expr in expressions.items()
        if metric_names(expr) - exported
    }
    assert unknown == {}
    assert all(metric_names(expr) for expr in expressions.values())


def test_a_new_ledger_drops_the_series_that_are_gone() -> None:
    metrics = representative()
    metrics.ledger(True, Ledger(), 1_700_000_300.0)
    text = metrics.render().decode()
    assert "sitectl_paused 1.0" in text
    assert "sitectl_operations_recorded{" not in text
    assert "sitectl_operation_unfinished_since_timestamp_seconds{" not in text
    assert "sitectl_last_passed_drill_timestamp_seconds 0.0" in text


def test_a_loss_the_sweep_finds_unknown_loses_its_series_even_one_the_gate_set() -> None:
    metrics = representative()
    metrics.loss.labels("object_store").set(99.0)  # as the readiness gate sets it
    unknown = Readiness("dc2", False, {"volume": None, "ldap": 1.0, "object_store": None}, {})
    metrics.swept(Sweep(()), unknown, 1_700_000_400.0)
    text = metrics.render().decode()
    assert 'sitectl_controller_estimated_loss_seconds{kind="ldap"} 1.0' in text
    assert 'estimated_loss_seconds{kind="volume"}' not in text
    assert 'estimated_loss_seconds{kind="object_store"}' not in text
