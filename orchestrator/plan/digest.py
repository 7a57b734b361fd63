"""A plan's fingerprint: what it does, step by step, hashed.

An operation records it so a resume refuses a plan whose topology changed underneath
it, and `plan -o FILE` writes it so `switchover --plan FILE` refuses to run anything but
the plan a person reviewed. Both compare the same fields: a step's id, action, site,
hosts and params. Notes, descriptions and reachability are what a person reads, not what
runs, so they are left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.plan.model import Plan

# The fields of a step (as Step.to_dict() writes them) that say what it does.
STEP_FIELDS = ("id", "action", "site", "hosts", "params")


def fingerprint(step: Mapping[str, Any]) -> dict[str, Any]:
    """What one step does, from its dict (Step.to_dict(), or a plan file's step)."""
    return {name: step.get(name) for name in STEP_FIELDS}


def digest_of(fingerprints: Iterable[Mapping[str, Any]]) -> str:
    # default=str: a param that is not plain JSON (none is today) still hashes stably.
    blob = json.dumps(list(fingerprints), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def plan_digest(plan: Plan) -> str:
    """A fingerprint of what the plan does (not of notes or reachability)."""
    return digest_of(fingerprint(s.to_dict()) for s in plan.steps())
