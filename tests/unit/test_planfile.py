"""Plan files (`plan -o FILE`, `switchover|failover --plan FILE`): what is refused, and the
one line that says what differs. Pure: plans built from the example topology."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli.main import app
from orchestrator.config import load_topology
from orchestrator.engine.progress import plan_digest as engine_digest
from orchestrator.plan import Plan, assumed_state, build_plan
from orchestrator.plan.digest import plan_digest
from orchestrator.plan.planfile import (
    BadPlanFile,
    difference,
    parse_plan_file,
    plan_file_text,
    refusal,
)

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGY = ROOT / "inventories/example-zimbra/topology.yaml"
TOPO = load_topology(TOPOLOGY)
SWITCHOVER = build_plan(TOPO, assumed_state(TOPO), "switchover", "dc2")
FAILOVER = build_plan(TOPO, assumed_state(TOPO, frozenset({"dc1"})), "failover", "dc2")
STEP_IDS = [s.id for s in SWITCHOVER.steps()]


def _edited(plan: Plan, step_index: int, **changes: object) -> Plan:
    """The plan with one step changed (its index counted over all groups)."""
    groups, seen = [], 0
    for group in plan.groups:
        steps = list(group.steps)
        for i, step in enumerate(steps):
            if seen == step_index:
                steps[i] = replace(step, **changes)
            seen += 1
        groups.append(replace(group, steps=tuple(steps)))
    return replace(plan, groups=tuple(groups))


def _without_last_group(plan: Plan) -> Plan:
    return replace(plan, groups=plan.groups[:-1])


def _saved(plan: Plan):
    return parse_plan_file(plan_file_text(plan), "dc2.json")


def test_the_engine_and_the_plan_file_digest_alike() -> None:
    # Operations recorded before the digest moved to plan/ must still resume.
    assert engine_digest(SWITCHOVER) == plan_digest(SWITCHOVER)
    assert json.loads(plan_file_text(SWITCHOVER))["digest"] == plan_digest(SWITCHOVER)


@pytest.mark.parametrize(
    ("saved", "now", "words"),
    [
        (SWITCHOVER, SWITCHOVER, None),
        # Reachability is not what runs: the same failover whether dc1 answers or not.
        (FAILOVER, build_plan(TOPO, assumed_state(TOPO), "failover", "dc2"), None),
        (FAILOVER, SWITCHOVER, "mode is failover in the file, switchover now"),
        (
            SWITCHOVER,
            replace(SWITCHOVER, from_site="dc2", to_site="dc1"),
            "from_site is dc1 in the file, dc2 now",
        ),
        (
            SWITCHOVER,
            _edited(SWITCHOVER, 3, id="preflight/other"),
            f"step 4 is {STEP_IDS[3]} in the file, preflight/other now",
        ),
        (
            SWITCHOVER,
            _edited(SWITCHOVER, 0, hosts=("mbox9.dc1",)),
            f'step 1 {STEP_IDS[0]}: hosts [] in the file, ["mbox9.dc1"] now',
        ),
        (
            SWITCHOVER,
            _without_last_group(SWITCHOVER),
            f"the file has {len(SWITCHOVER.groups[-1].steps)} more step",
        ),
        (
            _without_last_group(SWITCHOVER),
            SWITCHOVER,
            f"now there are {len(SWITCHOVER.groups[-1].steps)} more step",
        ),
        # Only descriptions and notes differ: what runs is the same.
        (SWITCHOVER, _edited(SWITCHOVER, 2, description="said otherwise"), None),
    ],
)
def test_difference(saved: Plan, now: Plan, words: str | None) -> None:
    found = difference(_saved(saved), now)
    if words is None:
        assert found is None
    else:
        assert found is not None and found.startswith(words), found


def test_a_long_value_is_cut_in_the_refusal() -> None:
    now = _edited(SWITCHOVER, 0, params={"x": "y" * 200})
    found = difference(_saved(SWITCHOVER), now)
    assert found is not None and found.endswith("… now") and len(found) < 200, found


def test_the_refusal_names_both_digests_and_how_to_plan_again() -> None:
    line = refusal(_saved(FAILOVER), SWITCHOVER)
    assert line == (
        f"refused: dc2.json is not the plan that would run now: mode is failover in the "
        f"file, switchover now (plan {plan_digest(FAILOVER)} in the file, "
        f"{plan_digest(SWITCHOVER)} now); nothing changed — review the plan again: "
        "sitectl plan --to dc2 --mode switchover -o dc2.json"
    )
    assert refusal(_saved(SWITCHOVER), SWITCHOVER) is None


def _tampered(change) -> str:
    data = json.loads(plan_file_text(SWITCHOVER))
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{not json", "dc2.json: not a plan file (not JSON: "),
        ("[]", "dc2.json: not a plan file of this sitectl (schema 'list', expected"),
        (
            _tampered(lambda d: d.update(schema="sitectl.plan/v0")),
            "dc2.json: not a plan file of this sitectl (schema 'sitectl.plan/v0'",
        ),
        (_tampered(lambda d: d.pop("digest")), "dc2.json: digest is missing or not text"),
        (_tampered(lambda d: d.update(mode=3)), "dc2.json: mode is missing or not text"),
        (_tampered(lambda d: d.update(groups={})), "dc2.json: groups is missing or not a list"),
        (
            _tampered(lambda d: d["groups"][1]["steps"][0].pop("params")),
            "dc2.json: group 1 has no list of steps with id, action, site, hosts, params",
        ),
        (
            _tampered(lambda d: d["groups"][0]["steps"][0].update(site="dc2")),
            "it was changed after `sitectl plan -o` wrote it",
        ),
    ],
)
def test_a_bad_plan_file_is_one_line_naming_it_and_the_fix(text: str, words: str) -> None:
    with pytest.raises(BadPlanFile) as caught:
        parse_plan_file(text, "dc2.json")
    message = str(caught.value)
    assert words in message
    assert "\n" not in message
    assert message.endswith("write it again with `sitectl plan --to SITE -o dc2.json`")


runner = CliRunner()


def test_plan_o_writes_the_plan_with_its_digest(tmp_path: Path) -> None:
    target = tmp_path / "dc2.json"
    done = runner.invoke(
        app, ["plan", "-c", str(TOPOLOGY), "--to", "dc2", "--from", "dc1", "-o", str(target)]
    )
    assert done.exit_code == 0, done.output
    saved = json.loads(target.read_text())
    assert saved == {**SWITCHOVER.to_dict(), "digest": plan_digest(SWITCHOVER)}
    assert f"wrote {target}: plan {plan_digest(SWITCHOVER)}" in done.stderr
    assert f"plan {plan_digest(SWITCHOVER)}" in done.stdout.splitlines()[0]


def test_plan_o_into_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    target = tmp_path / "nowhere" / "dc2.json"
    done = runner.invoke(
        app, ["plan", "-c", str(TOPOLOGY), "--to", "dc2", "--from", "dc1", "-o", str(target)]
    )
    assert done.exit_code == 2
    assert done.stderr.startswith(f"--output {target}: cannot write the plan file:")


@pytest.mark.parametrize("verb", ["switchover", "failover"])
def test_a_bad_plan_file_is_refused_before_anything_connects(verb: str, tmp_path: Path) -> None:
    # The example's ZooKeeper does not exist here: a refusal that connected first would
    # say "unavailable" (exit 1) instead.
    bad = tmp_path / "edited.json"
    bad.write_text(_tampered(lambda d: d.update(digest="0" * 16)))
    done = runner.invoke(app, [verb, "-c", str(TOPOLOGY), "--plan", str(bad), "--yes"])
    assert done.exit_code == 2, done.output
    assert done.stderr.startswith(f"--plan {bad}: its steps digest to ")
    assert len(done.stderr.strip().splitlines()) == 1
    missing = runner.invoke(app, [verb, "-c", str(TOPOLOGY), "--plan", str(tmp_path / "no")])
    assert missing.exit_code == 2
    assert missing.stderr.startswith(f"--plan {tmp_path / 'no'}: cannot read it:")


def test_switchover_needs_a_target_or_a_plan() -> None:
    done = runner.invoke(app, ["switchover", "-c", str(TOPOLOGY), "--yes"])
    assert done.exit_code == 2
    assert done.stderr.strip() == "refused: --to SITE is required (or --plan FILE)"
