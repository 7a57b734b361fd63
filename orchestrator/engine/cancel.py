"""When a running playbook must stop at once, not at its next gate.

ansible-runner asks a `cancel_callback` every few tenths of a second while
ansible-playbook runs; the answer comes from here. A run is cancelled, and its whole
process group killed, when:

1. the lease cannot be trusted: the ZooKeeper session is suspended or lost (the lease
   flags it on kazoo's thread), or this process was itself frozen (SIGSTOP, a stalled VM)
   for longer than the session timeout, which kazoo may not have noticed yet;
2. an operator asked to abort (read from ZooKeeper at most every ABORT_POLL_S);
3. the step a lane is running is past its deadline (the step's timeout).

The first reason found is kept: every lane of a shared run stops for the same one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from orchestrator.engine.handlers import Fence
from orchestrator.errors import Failed, LeaseLost, SitectlError

ABORT_POLL_S = 0.25

# A check: None while the run may go on, else the error its caller raises once the run
# is killed.
Cancel = Callable[[], SitectlError | None]


class AbortRequested(SitectlError):
    """An operator asked to abort: the step under way stops where it is (its checkpoint
    stays `running`) and the operation closes as aborted."""

    def __init__(self, who: str) -> None:
        super().__init__(f"{who} asked to abort")
        self.who = who


class DeadlinePassed(Failed):
    """A step ran past its timeout; its playbook run was killed."""

    def __init__(self, step_id: str, timeout: float) -> None:
        super().__init__(
            f"did not finish within {timeout:.0f} s, its timeout: its playbook run was killed"
        )
        self.step_id = step_id


@dataclass
class Watch:
    """The cancel checks of one playbook run, or of the lanes of one shared run."""

    fence: Fence
    abort_requested: Callable[[], str | None]  # who asked for `abort --now`, if anyone
    session_timeout: float
    clock: Callable[[], float] = time.monotonic
    cancelled: SitectlError | None = None  # the first reason found: every lane's
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # lane → (step id, deadline, timeout) of the step its plays run now
    _deadlines: dict[int, tuple[str, float, float]] = field(default_factory=dict)
    _abort_asked_at: float = float("-inf")

    def going(self, lane: int, step_id: str, timeout: float) -> None:
        """`step_id` started in `lane`: its deadline runs from now."""
        with self._lock:
            self._deadlines[lane] = (step_id, self.clock() + timeout, timeout)

    def gone(self, lane: int) -> None:
        """The step of `lane` is over (its plays ended): no deadline until the next."""
        with self._lock:
            self._deadlines.pop(lane, None)

    def check(self) -> Cancel:
        """A cancel check for one ansible-playbook run. Each has its own idea of when it
        was last asked, which is how it notices that this process was frozen."""
        last: list[float] = []  # from its first call: ansible-runner's start is not a freeze

        def cancel() -> SitectlError | None:
            now = self.clock()
            frozen = now - last[0] if last else 0.0
            last[:] = [now]
            if frozen > self.session_timeout:
                return self._cancel(
                    LeaseLost(
                        f"this process was frozen for {frozen:.0f} s, past the ZooKeeper "
                        "session timeout: another controller may lead now"
                    )
                )
            return self.reason()

        return cancel

    def reason(self) -> SitectlError | None:
        """Why the run must stop now, or None."""
        if self.cancelled is not None:
            return self.cancelled
        trouble = self.fence.interrupted()
        if trouble is not None:
            return self._cancel(LeaseLost(trouble))
        who = self._abort()
        if who is not None:
            return self._cancel(AbortRequested(who))
        now = self.clock()
        with self._lock:
            late = [(s, t) for s, deadline, t in self._deadlines.values() if now > deadline]
        if late:
            return self._cancel(DeadlinePassed(*late[0]))
        return None

    def _abort(self) -> str | None:
        now = self.clock()
        with self._lock:
            if now - self._abort_asked_at < ABORT_POLL_S:
                return None
            self._abort_asked_at = now
        try:
            return self.abort_requested()
        except SitectlError:  # ZooKeeper unreachable: the lease check decides
            return None

    def _cancel(self, error: SitectlError) -> SitectlError:
        with self._lock:
            if self.cancelled is None:
                self.cancelled = error
            return self.cancelled
