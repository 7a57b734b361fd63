"""Recording the new active site in ZooKeeper: the last step, the commit point."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.engine.handlers import StepContext
from orchestrator.plan.model import Step


class ActivateHandler:
    def __init__(self, set_active_site: Callable[[str], None]) -> None:
        # Given by the engine: a fenced write through the lease, so a deposed leader
        # cannot record itself as having moved the service.
        self._set_active_site = set_active_site

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        self._set_active_site(step.site or "")

    def verify(self, step: Step, ctx: StepContext) -> None:
        pass
