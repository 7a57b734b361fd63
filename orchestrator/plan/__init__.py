"""Plans: what an operation will do, as data."""

from orchestrator.plan.build import PlanRefused, build_plan, build_reprotect_plan
from orchestrator.plan.model import PLAN_SCHEMA, Action, Group, Phase, Plan, Step
from orchestrator.plan.observed import MirrorView, ObservedState, assumed_state

__all__ = [
    "PLAN_SCHEMA",
    "Action",
    "Group",
    "MirrorView",
    "ObservedState",
    "Phase",
    "Plan",
    "PlanRefused",
    "Step",
    "assumed_state",
    "build_plan",
    "build_reprotect_plan",
]
