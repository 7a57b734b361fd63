"""Plan files: `sitectl plan -o FILE` writes the plan a person reviewed, and
`switchover|failover --plan FILE` runs only that plan (terraform's saved plans).

The file is the plan's JSON (docs/plan-format.md) plus its `digest`. Running it means:
build the plan that would run now, and refuse unless it does exactly what the file says
(same cluster, mode, sites and step digest). Reading and comparing are pure; the caller
reads the file and says the sentence.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.plan.digest import STEP_FIELDS, digest_of, fingerprint, plan_digest
from orchestrator.plan.model import PLAN_SCHEMA, Plan

# Compared before the steps: a plan file of another mode or direction is named as such,
# not as "step 3 differs".
_HEADER = ("cluster", "mode", "from_site", "to_site")
_SHOWN = 60  # characters of a differing value shown in the refusal


class BadPlanFile(ValueError):
    """A plan file that cannot be used: one line naming the file and the fix."""


@dataclass(frozen=True)
class SavedPlan:
    source: str  # the file as the operator named it, for messages
    cluster: str
    mode: str
    from_site: str
    to_site: str
    digest: str
    steps: tuple[Mapping[str, Any], ...]  # each step's fingerprint, in order


def plan_file_json(plan: Plan) -> dict[str, Any]:
    """What `sitectl plan -o FILE` writes."""
    return {**plan.to_dict(), "digest": plan_digest(plan)}


def plan_file_text(plan: Plan) -> str:
    return json.dumps(plan_file_json(plan), indent=2) + "\n"


def parse_plan_file(text: str, source: str) -> SavedPlan:
    """A plan file's contents, checked: JSON of this schema, and steps that still digest
    to the digest it records (a file edited by hand is refused, not half-trusted)."""
    fix = f"write it again with `sitectl plan --to SITE -o {source}`"
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadPlanFile(f"{source}: not a plan file (not JSON: {exc}) — {fix}") from None
    if not isinstance(data, dict) or data.get("schema") != PLAN_SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise BadPlanFile(
            f"{source}: not a plan file of this sitectl (schema {found!r}, expected "
            f"{PLAN_SCHEMA!r}) — {fix}"
        )
    for key in (*_HEADER, "digest"):
        if not isinstance(data.get(key), str):
            raise BadPlanFile(f"{source}: {key} is missing or not text — {fix}")
    steps = _steps(data.get("groups"), source, fix)
    fingerprints = tuple(fingerprint(s) for s in steps)
    if digest_of(fingerprints) != data["digest"]:
        raise BadPlanFile(
            f"{source}: its steps digest to {digest_of(fingerprints)}, not to the "
            f"{data['digest']} it records: it was changed after `sitectl plan -o` wrote "
            f"it — {fix}"
        )
    return SavedPlan(
        source,
        data["cluster"],
        data["mode"],
        data["from_site"],
        data["to_site"],
        data["digest"],
        fingerprints,
    )


def _steps(groups: Any, source: str, fix: str) -> list[Mapping[str, Any]]:
    if not isinstance(groups, list):
        raise BadPlanFile(f"{source}: groups is missing or not a list — {fix}")
    steps: list[Mapping[str, Any]] = []
    for index, group in enumerate(groups):
        found = group.get("steps") if isinstance(group, dict) else None
        if not isinstance(found, list) or not all(
            isinstance(s, dict) and set(STEP_FIELDS) <= set(s) for s in found
        ):
            raise BadPlanFile(
                f"{source}: group {index} has no list of steps with "
                f"{', '.join(STEP_FIELDS)} — {fix}"
            )
        steps += found
    return steps


def difference(saved: SavedPlan, plan: Plan) -> str | None:
    """What differs between the saved plan and the plan that would run now, in a few
    words; None when they are the same plan."""
    now = {
        "cluster": plan.cluster,
        "mode": plan.mode.value,
        "from_site": plan.from_site,
        "to_site": plan.to_site,
    }
    for key in _HEADER:
        if getattr(saved, key) != now[key]:
            return f"{key} is {getattr(saved, key)} in the file, {now[key]} now"
    steps = tuple(fingerprint(s.to_dict()) for s in plan.steps())
    # Through JSON, as the file went: a tuple in params is a list there.
    steps = tuple(json.loads(json.dumps(s, default=str)) for s in steps)
    if digest_of(steps) == saved.digest:
        return None
    return _first_step_difference(saved.steps, steps)


def _first_step_difference(
    saved: Sequence[Mapping[str, Any]], now: Sequence[Mapping[str, Any]]
) -> str:
    for index, (was, is_) in enumerate(zip(saved, now, strict=False), start=1):
        if was == is_:
            continue
        if was["id"] != is_["id"]:
            return f"step {index} is {was['id']} in the file, {is_['id']} now"
        for key in STEP_FIELDS:
            if was[key] != is_[key]:
                return (
                    f"step {index} {was['id']}: {key} {_short(was[key])} in the file, "
                    f"{_short(is_[key])} now"
                )
    if len(saved) == len(now):  # unreachable while the digest covers only these fields
        return "the steps differ"
    shorter, longer, side = (
        (now, saved, "the file has") if len(saved) > len(now) else (saved, now, "now there are")
    )
    extra = longer[len(shorter) :]
    return (
        f"{side} {len(extra)} more step{'s' if len(extra) > 1 else ''}, from "
        f"{extra[0]['id']} (step {len(shorter) + 1})"
    )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def refusal(saved: SavedPlan, plan: Plan) -> str | None:
    """The one line `--plan FILE` refuses with, naming both digests; None: run it."""
    what = difference(saved, plan)
    if what is None:
        return None
    return (
        f"refused: {saved.source} is not the plan that would run now: {what} (plan "
        f"{saved.digest} in the file, {plan_digest(plan)} now); nothing changed — review "
        f"the plan again: sitectl plan --to {plan.to_site} --mode {plan.mode.value} "
        f"-o {saved.source}"
    )
