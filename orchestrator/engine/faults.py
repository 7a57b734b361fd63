"""Fault injection for the resume tests and drills: kill this process at a chosen point.

Driven by environment variables so a test can kill a real `sitectl` run exactly where it
wants, the way a power cut or an OOM kill would (SIGKILL: no cleanup, no finally).

    SITECTL_FAULT_KILL_AFTER_STEPS=N   after the N-th step checkpoint this process writes
    SITECTL_FAULT_KILL_INSIDE=STEP_ID  inside that step: after apply, before verify
    SITECTL_FAULT_STOP_BEFORE=STEP_ID  SIGSTOP itself in that step, after the last lease
                                       check and before apply: a leader frozen (GC pause,
                                       VM stall) at the worst moment, for the stale-leader
                                       scenario; SIGCONT lets it go on
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass


@dataclass
class Faults:
    kill_after_steps: int | None = None
    kill_inside: str | None = None
    stop_before: str | None = None
    _finished: int = 0

    @classmethod
    def from_env(cls) -> Faults:
        after = os.environ.get("SITECTL_FAULT_KILL_AFTER_STEPS")
        return cls(
            kill_after_steps=int(after) if after else None,
            kill_inside=os.environ.get("SITECTL_FAULT_KILL_INSIDE") or None,
            stop_before=os.environ.get("SITECTL_FAULT_STOP_BEFORE") or None,
        )

    def step_checkpointed(self) -> None:
        self._finished += 1
        if self.kill_after_steps is not None and self._finished >= self.kill_after_steps:
            os.kill(os.getpid(), signal.SIGKILL)

    def inside_step(self, step_id: str) -> None:
        if self.kill_inside == step_id:
            os.kill(os.getpid(), signal.SIGKILL)

    def before_apply(self, step_id: str) -> None:
        if self.stop_before == step_id:
            os.kill(os.getpid(), signal.SIGSTOP)
