"""A vantage point's verdict of a site, and its streak of consecutive "down" probes
(pure: sweeps are given, not run)."""

from __future__ import annotations

import pytest
import yaml

from orchestrator.checks import CheckResult, Status, Sweep
from orchestrator.config.loader import validate_text
from orchestrator.controller.daemon import decisive
from orchestrator.controller.decision import SiteView
from orchestrator.controller.vantage import Prober, judge_site, service_targets
from tests.controller.conftest import topology_doc

DOC = topology_doc("t", "127.0.11.1:2181,127.0.11.2:2181,127.0.11.3:2181")
DOC["hosts"].append(
    {"name": "dc1-ldap", "site": "dc1", "roles": ["ldap"], "address": "127.0.21.11"}
)
DOC["roles"]["ldap"] = {
    "start_order": 0,
    "services": ["slapd"],
    "moves": False,
    "probes": [{"kind": "tcp", "port": 389}],
}
TOPO = validate_text(yaml.safe_dump(DOC), "topology.yaml", check_filesystem=False)

APP = "app tcp://127.0.21.1:2525"
LDAP = "ldap tcp://127.0.21.11:389"


def result(target: str, status: Status, site: str = "dc1", reason: str = "") -> CheckResult:
    return CheckResult("application", site, target, status, reason)


def test_only_the_roles_that_move_judge_a_site() -> None:
    assert service_targets(TOPO, "dc1") == {APP}


def test_a_hung_site_whose_ldap_still_accepts_tcp_is_down() -> None:
    results = [
        result(APP, Status.DOWN, reason="accepts connections but did not answer"),
        result(LDAP, Status.OK),
    ]
    assert judge_site(results, "dc1", service_targets(TOPO, "dc1")) == SiteView(
        "down",
        reason="application dc1 app tcp://127.0.21.1:2525: down — accepts "
        "connections but did not answer",
    )


def test_verdicts() -> None:
    two = [result(APP, Status.DOWN, reason="refused"), result("app tcp://x:1", Status.OK)]
    assert judge_site(two, "dc1").status == "degraded"
    assert judge_site([result(APP, Status.OK)], "dc1") == SiteView("up")
    assert judge_site([result(APP, Status.DOWN, site="dc2")], "dc1") == SiteView(
        "up", reason="nothing to probe"
    )


def test_the_streak_counts_consecutive_down_probes_and_resets() -> None:
    answers = iter([Status.DOWN, Status.DOWN, Status.OK, Status.DOWN])
    prober = Prober(
        TOPO,
        "witness",
        sweeper=lambda topo, timeout: Sweep((result(APP, next(answers)),)),
        clock=lambda: 1.0,
    )
    reports = [prober.probe("dc1", 1.0) for _ in range(4)]
    assert [r.sites["dc1"].streak for r in reports] == [1, 2, 0, 1]
    assert [r.seq for r in reports] == [1, 2, 3, 4]  # the leader sees each one change


@pytest.mark.parametrize(
    ("sites", "wakes"),
    [
        ({"dc1": {"status": "down", "streak": 3}, "dc2": {"status": "ok", "streak": 0}}, True),
        ({"dc1": {"status": "down", "streak": 4}}, True),
        ({"dc1": {"status": "down", "streak": 2}, "dc2": {"status": "down", "streak": 1}}, False),
        ({"dc1": {"status": "ok", "streak": 0}}, False),
        ({}, False),
        ({"dc1": "garbage"}, False),
    ],
)
def test_a_report_wakes_the_leader_once_a_streak_is_complete(sites, wakes) -> None:
    # Three failures in a row are the policy here: that report may complete a quorum.
    assert decisive({"vantage": "witness", "sites": sites}, 3) is wakes
    assert decisive(None, 3) is False
