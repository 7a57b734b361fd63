"""Two sites serving, found by the sweep's own judgement across sites (pure, no servers):
one `down` finding marked as a split brain, counted by a metric, never blocking the
operation that ends it."""

from __future__ import annotations

import pytest

from orchestrator.checks import application
from orchestrator.checks.blocking import blocking_problems
from orchestrator.checks.metrics import exposition
from orchestrator.checks.result import SPLIT_BRAIN, CheckResult, Status, Sweep
from tests.checks.topologies import topology

TOPO = topology(
    hosts=[
        {"name": "dc1-mta", "site": "dc1", "roles": ["mta"], "address": "127.0.1.1"},
        {"name": "dc2-mta", "site": "dc2", "roles": ["mta"], "address": "127.0.2.1"},
        {"name": "dc1-ldap", "site": "dc1", "roles": ["ldap"], "address": "127.0.1.11"},
        {"name": "dc2-ldap", "site": "dc2", "roles": ["ldap"], "address": "127.0.2.11"},
    ],
    roles={
        "mta": {
            "start_order": 1,
            "services": ["postfix"],
            "probes": [{"kind": "smtp", "port": 25}],
        },
        "ldap": {
            "start_order": 0,
            "services": ["slapd"],
            "moves": False,
            "probes": [{"kind": "tcp", "port": 389}],
        },
    },
)


def probe(role: str, site: str, up: bool) -> CheckResult:
    address = {"mta": "127.0.{}.1", "ldap": "127.0.{}.11"}[role].format(site[-1])
    kind, port = ("smtp", 25) if role == "mta" else ("tcp", 389)
    expect_up = site == "dc1" or role == "ldap"
    status = Status.OK if up == expect_up else (Status.DOWN if expect_up else Status.DEGRADED)
    return CheckResult(
        "application", site, f"{role} {kind}://{address}:{port}", status, "", {"up": float(up)}
    )


@pytest.mark.parametrize(
    ("answering", "finding"),
    [
        ({("mta", "dc1"), ("ldap", "dc1"), ("ldap", "dc2")}, None),
        ({("mta", "dc2"), ("ldap", "dc1"), ("ldap", "dc2")}, None),  # the wrong site, alone
        (set(), None),
        (
            {("mta", "dc1"), ("mta", "dc2"), ("ldap", "dc1"), ("ldap", "dc2")},
            "split brain: 2 sites serve the application (dc1: mta smtp://127.0.1.1:25; dc2: "
            "mta smtp://127.0.2.1:25); stop it where dc1 is not, or fail over",
        ),
    ],
    ids=["as-it-should", "standby-alone", "nothing", "two-sites"],
)
def test_two_sites_answering_for_a_role_that_moves_is_one_down_finding(
    answering: set[tuple[str, str]], finding: str | None
) -> None:
    results = [
        probe(role, site, (role, site) in answering)
        for role in ("mta", "ldap")
        for site in ("dc1", "dc2")
    ]
    out = application.summarize(TOPO, results)
    assert out[: len(results)] == results, "the probes' own results are kept as they are"
    added = out[len(results) :]
    if finding is None:
        assert added == []
        return
    (split,) = added
    assert (split.system, split.site, split.target, split.status) == (
        "application",
        None,
        "split-brain",
        Status.DOWN,
    )
    assert split.reason == finding and split.split_brain
    sweep = Sweep(tuple(out))
    assert sweep.worst() is Status.DOWN and sweep.split_brains() == [split]
    assert "sitectl_split_brain 1.0" in exposition(sweep)
    assert "sitectl_split_brain 0.0" in exposition(Sweep(tuple(results)))
    # Moving the service is how a split brain ends: it blocks neither move.
    for mode in ("switchover", "failover"):
        assert blocking_problems(
            sweep, "application", from_site="dc1", to_site="dc2", mode=mode
        ) == [
            p
            for p in blocking_problems(
                Sweep(tuple(results)), "application", from_site="dc1", to_site="dc2", mode=mode
            )
        ]


def test_a_cluster_wide_down_finding_that_is_no_split_brain_still_blocks() -> None:
    down = CheckResult("application", None, "x", Status.DOWN, "gone", {SPLIT_BRAIN: 0.0})
    assert blocking_problems(
        Sweep((down,)), "application", from_site="dc1", to_site="dc2", mode="failover"
    ) == ["application x is down (gone): the whole cluster depends on it."]
