"""The CLI contract scripts rely on: JSON shapes, exit codes, help with examples."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.config import load_topology
from orchestrator.plan import ObservedState, build_reprotect_plan
from tests.unit.cli_tree import verbs

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = str(ROOT / "inventories/example-zimbra/topology.yaml")
runner = CliRunner()


def test_plan_json_is_the_documented_structure() -> None:
    result = runner.invoke(app, ["plan", "-c", TOPOLOGY, "--to", "dc2", "--json"])
    assert result.exit_code == 0
    plan = json.loads(result.stdout)
    assert set(plan) == {
        "schema",
        "cluster",
        "mode",
        "trigger",
        "from_site",
        "to_site",
        "old_site_reachable",
        "notes",
        "groups",
    }
    assert (plan["schema"], plan["mode"], plan["from_site"], plan["to_site"]) == (
        "sitectl.plan/v1",
        "switchover",
        "dc1",
        "dc2",
    )
    for index, group in enumerate(plan["groups"]):
        assert set(group) == {"index", "phase", "parallel", "steps"}
        assert group["index"] == index
        assert group["parallel"] == (len(group["steps"]) > 1)
        for step in group["steps"]:
            assert set(step) == {
                "id",
                "phase",
                "action",
                "site",
                "target",
                "hosts",
                "if_unreachable",
                "description",
                "params",
            }
    documented = (ROOT / "docs/plan-format.md").read_text(encoding="utf-8")
    for key in plan["groups"][0]["steps"][0]:
        assert f"`{key}`" in documented, f"docs/plan-format.md does not document {key}"


def test_every_phase_and_action_of_the_example_plans_is_documented() -> None:
    documented = (ROOT / "docs/plan-format.md").read_text(encoding="utf-8")
    values: set[str] = set()
    for extra in (["--to", "dc2"], ["--to", "dc2", "--mode", "failover", "--unreachable", "dc1"]):
        result = runner.invoke(app, ["plan", "-c", TOPOLOGY, "--from", "dc1", "--json", *extra])
        assert result.exit_code == 0, result.output
        for group in json.loads(result.stdout)["groups"]:
            values.add(group["phase"])
            values.update(
                value for step in group["steps"] for value in (step["phase"], step["action"])
            )
    reprotect = build_reprotect_plan(load_topology(TOPOLOGY), ObservedState(active_site="dc2"))
    values.update(value for step in reprotect.steps() for value in (step.phase, step.action))
    assert {"dns.promote", "unmount", "final-sync"} <= values  # the plans this test reads
    missing = sorted(v for v in values if f"`{v}`" not in documented)
    assert not missing, f"docs/plan-format.md does not name: {', '.join(missing)}"


def test_the_documented_order_is_the_plans_order() -> None:
    documented = (ROOT / "docs/plan-format.md").read_text(encoding="utf-8")
    order = documented[documented.index("## The order") :]
    result = runner.invoke(app, ["plan", "-c", TOPOLOGY, "--to", "dc2", "--from", "dc1", "--json"])
    phases = list(dict.fromkeys(g["phase"] for g in json.loads(result.stdout)["groups"]))
    positions = [order.index(f"`{phase}`") for phase in phases]
    assert positions == sorted(positions), f"the plan runs {phases}; the doc lists another order"


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["plan", "--to", "dc2"], 0),
        (["plan", "--to", "dc1"], 2),  # already active: bad input
        (["plan", "--to", "dc2", "--unreachable", "dc1"], 4),  # switchover refused by the gate
        (["plan", "--to", "dc2", "--unreachable", "dc7"], 2),
        (["plan", "--to", "dc2", "--mode", "failover", "--unreachable", "dc1"], 0),
        (["plan", "--to", "dc2", "--mode", "takeover"], 2),
    ],
)
def test_exit_codes(args: list[str], code: int) -> None:
    result = runner.invoke(app, [*args, "-c", TOPOLOGY])
    assert result.exit_code == code, result.output


@pytest.mark.parametrize(
    "args",
    [
        ["failover", "--to", "dc2", "--accept-data-loss", "--json"],
        ["switchover", "--to", "dc2", "--reason", "--yes"],
    ],
)
def test_an_option_is_never_taken_as_a_reason(args: list[str]) -> None:
    # Before anything connects: the reason would be recorded as "--json" and the
    # operator's --json lost.
    result = runner.invoke(app, [*args, "-c", TOPOLOGY])
    assert result.exit_code == 2, result.output
    assert "is an option, not a reason" in result.output


RUNNABLE = [v for v in verbs() if v.runs_something]


@pytest.mark.parametrize("verb", RUNNABLE, ids=[v.name for v in RUNNABLE])
def test_every_verb_has_help_with_an_example(verb) -> None:
    result = runner.invoke(app, [*verb.path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output, f"`sitectl {verb.name} --help` shows no example"


def test_the_help_walk_sees_the_nested_verbs() -> None:
    # Guards the walk above: a tree it failed to descend would pass with nothing to check.
    names = {v.name for v in RUNNABLE}
    expected = {"validate", "drill", "drill history", "controller run", "lab up", "lab heal-site"}
    assert expected <= names


def _reference_rows() -> tuple[dict[tuple[str, ...], str], str]:
    """The README's CLI reference: each row keyed by the command its first cell names."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## CLI reference") :]
    section = section[: section.index("\n## ", 1)]
    rows: dict[tuple[str, ...], str] = {}
    for line in section.splitlines():
        first = line.split(" | ")[0]
        named = re.match(r"\| `sitectl((?: [a-z][a-z-]*)+)", first)
        if named:
            rows[tuple(named[1].split())] = line
    return rows, section[: section.index("| command |")]


def test_the_readme_reference_names_every_option_of_every_command() -> None:
    rows, intro = _reference_rows()
    missing = []
    for verb in RUNNABLE:
        row = rows.get(verb.path)
        if row is None:
            missing.append(f"`sitectl {verb.name}` has no row")
            continue
        for option in verb.options():
            # -c/--config is the same on every command: the intro says so once.
            if option == "--config" and "`-c/--config FILE`" in intro:
                continue
            if not re.search(rf"{re.escape(option)}(?![\w-])", row):
                missing.append(f"`sitectl {verb.name}` {option}")
    assert not missing, "README.md's CLI reference misses: " + "; ".join(missing)


def test_generated_inventory_matches_the_committed_example() -> None:
    result = runner.invoke(app, ["inventory", "-c", TOPOLOGY])
    assert result.exit_code == 0
    committed = (ROOT / "inventories/example-zimbra/hosts.yml").read_text(encoding="utf-8")
    assert result.output == committed


def test_the_installed_console_script_runs() -> None:
    sitectl = Path(sys.executable).with_name("sitectl")
    done = subprocess.run(
        [str(sitectl), "validate", "--json", "-c", TOPOLOGY], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True
    completion = subprocess.run(
        [str(sitectl), "--show-completion", "bash"],
        capture_output=True,
        text=True,
        env={"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1", "PATH": ""},
    )
    assert "complete" in completion.stdout, completion.stderr


def test_plan_from_a_site_needs_no_zookeeper() -> None:
    result = runner.invoke(app, ["plan", "-c", TOPOLOGY, "--to", "dc2", "--from", "dc1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["from_site"] == "dc1"
    assert result.stderr == ""
    # From dc2 the way back needs the mirrors reversed first, and plan says so.
    back = runner.invoke(app, ["plan", "-c", TOPOLOGY, "--to", "dc1", "--from", "dc2"])
    assert back.exit_code == 4
    assert "run `sitectl reprotect`" in back.stderr


def test_plan_from_a_site_that_is_not_a_datacenter_is_one_line() -> None:
    result = runner.invoke(app, ["plan", "-c", TOPOLOGY, "--to", "dc1", "--from", "witness"])
    assert result.exit_code == 2
    assert result.stderr.strip() == "--from witness: not a datacenter — use one of: dc1, dc2"


def test_plan_says_when_zookeeper_does_not_answer() -> None:
    # The example's ensemble is on hosts that do not exist here.
    result = runner.invoke(app, ["plan", "-c", TOPOLOGY, "--to", "dc2", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["from_site"] == "dc1"
    assert (
        "ZooKeeper did not answer within 2 s: planning from the topology file's active site dc1"
        in result.stderr
    )
