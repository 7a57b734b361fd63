"""Plan evaluation's pure parts, by tables: the verdict, the hook event a change calls
for, and how each check reads what it found (hosts, playbooks, keys, ZooKeeper ACLs,
volumes, readiness)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.checks.readiness import Readiness
from orchestrator.evaluate.dns import judge_zone
from orchestrator.evaluate.findings import (
    Evaluation,
    Finding,
    Outcome,
    changed,
    evaluation,
    note,
    ok,
    problem,
)
from orchestrator.evaluate.hosts import Expect, expectations, judge_host, merged
from orchestrator.evaluate.playbooks import judge_syntax, playbooks_used
from orchestrator.evaluate.readiness import judge_readiness
from orchestrator.evaluate.volumes import judge_btrfs
from orchestrator.evaluate.zookeeper import ADMIN, CREATE, DELETE, READ, WRITE, judge_node
from orchestrator.plan import assumed_state, build_plan
from tests.checks.topologies import topology

OK = ok("ansible", "dc2-mta", "answers")
BAD = problem("tsig", "lab.internal.", "no server accepts key file k")
NOTE = note("mount", "vol at dc2", "not checkable")


@pytest.mark.parametrize(
    ("findings", "ready", "verdict"),
    [
        ([], True, "a move to dc2 could run now: 0 checks passed."),
        ([OK], True, "a move to dc2 could run now: 1 checks passed."),
        ([OK, NOTE], True, "a move to dc2 could run now: 2 checks passed (1 not checkable, "),
        (
            [OK, BAD],
            False,
            "a move to dc2 could not run now: tsig lab.internal.: no server accepts key file k.",
        ),
        (
            [BAD] * 7,
            False,
            "a move to dc2 could not run now: " + "; ".join([BAD.describe()] * 5) + "; and 2 more.",
        ),
    ],
)
def test_the_verdict_is_ready_only_without_problems(
    findings: list[Finding], ready: bool, verdict: str
) -> None:
    result = evaluation("dc2", findings, 100.0)
    assert result.ready is ready
    assert result.describe().startswith(verdict)
    assert len(result.problems) == sum(1 for f in findings if f.outcome is Outcome.PROBLEM)


def test_findings_are_ordered_problems_first_and_round_trip_as_json() -> None:
    result = evaluation("dc2", [OK, NOTE, BAD], 100.0, 2.5)
    assert [f.outcome for f in result.findings] == [Outcome.PROBLEM, Outcome.NOTE, Outcome.OK]
    data = result.to_dict()
    assert data["schema"] == "sitectl.evaluation/v1"
    assert data["ready"] is False and data["problems"] == [BAD.to_dict()]
    assert Evaluation.from_dict(data) == result


READY = evaluation("dc2", [OK], 1.0)
NOT_READY = evaluation("dc2", [BAD], 2.0)


@pytest.mark.parametrize(
    ("before", "after", "event"),
    [
        (None, READY, None),
        (None, NOT_READY, "plan-not-ready"),
        (READY, READY, None),
        (READY, NOT_READY, "plan-not-ready"),
        (NOT_READY, NOT_READY, None),
        (NOT_READY, READY, "plan-ready"),
        (evaluation("dc1", [BAD], 0.0), READY, None),  # the target changed: a new story
        (evaluation("dc1", [OK], 0.0), NOT_READY, "plan-not-ready"),
    ],
)
def test_a_hook_event_only_when_the_verdict_changes(
    before: Evaluation | None, after: Evaluation, event: str | None
) -> None:
    assert changed(before, after) == event


# -- hosts ----------------------------------------------------------------------------

EXPECT = Expect(
    paths=(("mailstore", "/srv/dc2"),),
    commands=(("mailbox", "{{ lab_app }} status"),),
    services=(("dns", "named"),),
)
PING = {"ping": "pong"}


def _loop(*items: dict[str, Any]) -> dict[str, Any]:
    return {"results": list(items)}


GOOD = {
    "ping": PING,
    "mount point directories": _loop({"stat": {"exists": True, "isdir": True}}),
    "status commands": _loop({"rc": 0}),
    "services": {"ansible_facts": {"services": {"named.service": {"state": "stopped"}}}},
}


def _with(**tasks: dict[str, Any]) -> dict[str, Any]:
    return {**GOOD, **{k.replace("_", " "): v for k, v in tasks.items()}}


@pytest.mark.parametrize(
    ("results", "unreachable", "expected"),
    [
        (
            GOOD,
            None,
            [
                ("ansible", Outcome.OK, "answers Ansible ping"),
                ("mount", Outcome.OK, "/srv/dc2, where the mount point goes, exists"),
                ("service", Outcome.OK, "its status command runs there (exit 0)"),
                ("service", Outcome.OK, "service named is installed"),
            ],
        ),
        (
            {},
            "Failed to connect to the host via ssh: Host key verification failed.",
            [("ansible", Outcome.PROBLEM, "its SSH host key does not match known_hosts")],
        ),
        (
            {},
            "@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@",
            [("ansible", Outcome.PROBLEM, "its SSH host key does not match known_hosts")],
        ),
        (
            {},
            "ssh: connect to host 198.18.2.1 port 22: Connection timed out",
            [("ansible", Outcome.PROBLEM, "does not answer Ansible over SSH: ssh: connect")],
        ),
        (
            _with(mount_point_directories=_loop({"stat": {"exists": False}})),
            None,
            [("mount", Outcome.PROBLEM, "/srv/dc2 does not exist")],
        ),
        (
            _with(mount_point_directories=_loop({"stat": {"exists": True, "isdir": False}})),
            None,
            [("mount", Outcome.PROBLEM, "/srv/dc2 exists but is not a directory")],
        ),
        (
            _with(status_commands=_loop({"rc": 127, "stderr": "lab_app: not found"})),
            None,
            [("service", Outcome.PROBLEM, "its status command cannot run (exit 127")],
        ),
        (
            # A stopped service answers its status with 3 (LSB): that is a standby's normal.
            _with(status_commands=_loop({"rc": 3})),
            None,
            [("service", Outcome.OK, "its status command runs there (exit 3)")],
        ),
        (
            _with(services={"ansible_facts": {"services": {"slapd": {}}}}),
            None,
            [("service", Outcome.PROBLEM, "service named is not installed on dc2-dns")],
        ),
        (
            _with(services={"failed": True, "msg": "no service manager"}),
            None,
            [("service", Outcome.NOTE, "the services cannot be listed there (no service")],
        ),
    ],
)
def test_a_hosts_findings(
    results: dict[str, Any], unreachable: str | None, expected: list[tuple[str, Outcome, str]]
) -> None:
    found = judge_host("dc2-dns", EXPECT, results, unreachable)
    for check, outcome, start in expected:
        assert any(
            f.check == check and f.outcome is outcome and f.reason.startswith(start) for f in found
        ), (check, outcome, start, found)
    if unreachable is not None:
        assert len(found) == 1  # nothing else is known of a host out of reach


# -- playbooks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exists", "rc", "output", "outcome", "start"),
    [
        (True, 0, "", Outcome.OK, "exists and passes ansible-playbook --syntax-check"),
        (False, None, "", Outcome.PROBLEM, "/p/app.yml does not exist — a move runs it"),
        (True, 4, "ERROR! 'hostz' is not a valid attribute", Outcome.PROBLEM, "ansible-playbook"),
    ],
)
def test_a_playbooks_finding(
    exists: bool, rc: int | None, output: str, outcome: Outcome, start: str
) -> None:
    found = judge_syntax(Path("/p/app.yml"), exists, rc, output)
    assert found.outcome is outcome and found.reason.startswith(start), found
    if rc:
        assert "(exit 4): ERROR! 'hostz'" in found.reason


PROMOTED = {
    "promote": {
        "dc2": {
            "server": {"address": "127.0.2.53"},
            "host": "dc2-mta",
            "promote_command": "promote",
            "demote_command": "demote",
        }
    }
}


@pytest.mark.parametrize(
    ("mode", "zone", "names"),
    [
        ("switchover", {}, ["volume.yml", "app.yml"]),  # the pre-syncs first
        ("failover", {}, ["app.yml", "volume.yml"]),
        # A failover promotes dc2's DNS server where the zone's primary was dc1's.
        ("failover", PROMOTED, ["app.yml", "volume.yml", "dns-role.yml"]),
    ],
)
def test_the_playbooks_are_those_the_plan_runs(
    mode: str, zone: dict[str, Any], names: list[str]
) -> None:
    base = topology()
    zones = [z.model_dump(mode="json", exclude_none=True) | zone for z in base.dns.zones]
    topo = topology(dns={"zones": zones}) if zone else base
    plan = build_plan(topo, assumed_state(topo), mode, "dc2")  # type: ignore[arg-type]
    used = playbooks_used(topo, plan)
    assert [p.name for p in used] == names
    assert all(p.parent == topo.playbook_dir for p in used)


def test_the_operators_playbooks_are_checked_with_ours() -> None:
    topo = topology(
        custom_steps=[
            {"name": "identity", "after": "mount", "playbook": "ops/identity.yml", "on": "mta"},
            {"name": "flush", "after": "start-services", "command": "true", "on": "mta"},
            {"name": "page", "after": "verify", "command": "true"},  # here: no playbook
        ]
    )
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    used = playbooks_used(topo, plan)
    assert [p.name for p in used] == ["volume.yml", "app.yml", "identity.yml", "custom.yml"]
    assert used[2] == topo.resolve("ops/identity.yml")


def test_each_target_host_is_expected_to_offer_what_the_plan_uses_there() -> None:
    topo = topology()
    plan = build_plan(topo, assumed_state(topo), "switchover", "dc2")
    assert expectations(topo, plan) == {
        "dc2-mta": Expect(paths=(("mailstore", "/srv"),), services=(("mta", "postfix"),))
    }
    with_commands = topology(
        roles={
            "mta": {
                "start_order": 1,
                "services": ["postfix"],
                "commands": {"start": "s", "stop": "t", "status": "zmcontrol status"},
            }
        }
    )
    plan = build_plan(with_commands, assumed_state(with_commands), "switchover", "dc2")
    assert expectations(with_commands, plan)["dc2-mta"].commands == (("mta", "zmcontrol status"),)


def test_both_moves_expectations_merge_each_item_once() -> None:
    base = topology()
    zones = [z.model_dump(mode="json", exclude_none=True) | PROMOTED for z in base.dns.zones]
    topo = topology(dns={"zones": zones})
    each = [
        expectations(topo, build_plan(topo, assumed_state(topo), mode, "dc2"))
        for mode in ("switchover", "failover")
    ]
    assert merged(each) == {
        # The failover's DNS promotion runs on dc2-mta here: reached (pinged) once.
        "dc2-mta": Expect(paths=(("mailstore", "/srv"),), services=(("mta", "postfix"),))
    }
    assert merged([{"h": Expect(paths=(("v", "/a"),))}, {"h": Expect(paths=(("w", "/b"),))}]) == {
        "h": Expect(paths=(("v", "/a"), ("w", "/b")))
    }


# -- TSIG keys ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("unreadable", "accepted", "refusals", "outcome", "start"),
    [
        (None, ["198.18.1.1:53"], [], Outcome.OK, "key file k is accepted by 198.18.1.1:53"),
        ("mode 0644", [], [], Outcome.PROBLEM, "key file k cannot be used: mode 0644"),
        (
            None,
            [],
            ["198.18.1.1:53: BADSIG", "198.18.2.1:53: not primary"],
            Outcome.PROBLEM,
            "no server accepts key file k: 198.18.1.1:53: BADSIG; 198.18.2.1:53",
        ),
    ],
)
def test_a_zones_key_finding(
    unreadable: str | None, accepted: list[str], refusals: list[str], outcome: Outcome, start: str
) -> None:
    found = judge_zone("lab.internal.", "key file k", unreadable, accepted, refusals)
    assert found.outcome is outcome and found.reason.startswith(start), found


# -- ZooKeeper ----------------------------------------------------------------------------

ME = "sitectl:abc="
ALL = READ | WRITE | CREATE | DELETE | ADMIN


@pytest.mark.parametrize(
    ("acls", "needed", "outcome", "words"),
    [
        (None, READ | WRITE, Outcome.OK, "not made yet"),
        ([(ALL, "digest", ME)], READ | WRITE, Outcome.OK, "its ACL lets"),
        ([(ALL, "world", "anyone")], READ | CREATE | DELETE, Outcome.OK, "its ACL lets"),
        ([(READ | ADMIN, "digest", ME)], READ | WRITE, Outcome.PROBLEM, "grant sitectl write"),
        (
            [(ALL, "digest", "sitectl:other=")],
            READ | CREATE | DELETE,
            Outcome.PROBLEM,
            "grant sitectl read, create, delete",
        ),
        (
            [(READ | WRITE, "digest", ME), (CREATE, "world", "anyone")],
            READ | WRITE | CREATE,
            Outcome.OK,
            "its ACL lets",
        ),
    ],
)
def test_a_nodes_acl_finding(
    acls: list[tuple[int, str, str]] | None, needed: int, outcome: Outcome, words: str
) -> None:
    found = judge_node("/sitectl/lab/epoch", acls, ME, needed)
    assert found.outcome is outcome and words in found.reason, found


# -- volumes and readiness ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "present", "outcome", "start"),
    [
        ("/dev/loop3", True, Outcome.OK, "dc2's pool /p is mounted from /dev/loop3"),
        (None, False, Outcome.PROBLEM, "dc2's pool /p is not mounted here"),
        ("/dev/loop3", False, Outcome.PROBLEM, "dc2's pool /p is mounted from /dev/loop3, now"),
    ],
)
def test_a_btrfs_volumes_finding(
    device: str | None, present: bool, outcome: Outcome, start: str
) -> None:
    found = judge_btrfs("mailstore", "dc2", "/p", device, present)
    assert found.outcome is outcome and found.reason.startswith(start)


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (
            Readiness("dc2", True, {"volume": 2.0, "ldap": 1.0}, {"volume": 30, "ldap": 10}),
            [("volume", Outcome.OK), ("ldap", Outcome.OK)],
        ),
        (
            Readiness("dc2", False, {"volume": 45.0}, {"volume": 30}, ("volume over",)),
            [("volume", Outcome.PROBLEM)],
        ),
        (
            Readiness("dc2", False, {"ldap": None}, {"ldap": 10}, ("unknown",)),
            [("ldap", Outcome.PROBLEM)],
        ),
        (
            Readiness("dc9", False, {}, {}, ("dc9 is not a datacenter",)),
            [("dc9", Outcome.PROBLEM)],
        ),
    ],
)
def test_the_readiness_findings(verdict: Readiness, expected: list[tuple[str, Outcome]]) -> None:
    assert [(f.subject, f.outcome) for f in judge_readiness(verdict)] == expected


# -- the CLI ------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example-zimbra" / "topology.yaml"


@pytest.mark.parametrize(
    ("findings", "exit_code", "last_line"),
    [
        ([OK], 0, "a move to dc2 could run now: 1 checks passed."),
        (
            [OK, problem("playbook", "/p/x.yml", "refuses x.yml: [WARNING] [/] [b]")],
            4,
            "a move to dc2 could not run now: playbook /p/x.yml: refuses x.yml: [WARNING] [/] [b].",
        ),
    ],
)
def test_the_cli_prints_a_table_and_the_verdict_and_exits_4_when_not_ready(
    findings: list[Finding], exit_code: int, last_line: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import evaluate as cli
    from orchestrator.cli.main import app
    from orchestrator.evaluate import run

    def fake(topo: Any, to_site: str, *, on_progress: Any = None) -> Evaluation:
        on_progress("hosts", findings)
        return evaluation(to_site, findings, 1.0)

    monkeypatch.setattr(cli, "as_recorded", lambda topo: topo)
    monkeypatch.setattr(run, "evaluate", fake)
    result = CliRunner().invoke(app, ["evaluate", "--to", "dc2", "-c", str(EXAMPLE)])
    assert result.exit_code == exit_code, result.output
    lines = result.stdout.strip().splitlines()
    assert " ".join(lines[-2:]).endswith(last_line) or lines[-1] == last_line, result.stdout
    assert "hosts: " in result.stderr  # progress, apart from the result
    if exit_code:
        assert "[WARNING] [/] [b]" in result.stdout  # quoted as said, not read as markup

    as_json = CliRunner().invoke(app, ["evaluate", "--to", "dc2", "-c", str(EXAMPLE), "--json"])
    assert as_json.exit_code == exit_code
    assert json.loads(as_json.stdout)["ready"] is (exit_code == 0)


def test_a_site_that_is_no_datacenter_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import evaluate as cli
    from orchestrator.cli.main import app

    monkeypatch.setattr(cli, "as_recorded", lambda topo: topo)
    result = CliRunner().invoke(app, ["evaluate", "--to", "witness", "-c", str(EXAMPLE)])
    assert result.exit_code == 2
    assert "--to witness: not a datacenter — use one of: dc1, dc2" in result.stderr


@pytest.mark.parametrize(
    ("recorded", "line"),
    [
        (None, "plan evaluation: none recorded yet (the leading controller evaluates)"),
        (evaluation("dc2", [BAD], 0.0).to_dict(), "a move to dc2 could not run now: tsig"),
    ],
)
def test_status_says_the_last_evaluation_in_one_line(
    recorded: dict[str, Any] | None, line: str
) -> None:
    from orchestrator.statustable import evaluation_line

    said = evaluation_line(recorded)
    assert line in said and "\n" not in said
