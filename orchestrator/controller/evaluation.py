"""The leader's plan evaluation: could a move to the standby run right now?

Every `policy.evaluate_every` (default 30 min), and as soon as the topology file's
contents change (a digest of its bytes, compared at each tick), the leading controller
runs `sitectl evaluate`'s checks (orchestrator/evaluate, read-only) for a move (the
switchover, and the failover an automatic promotion would run) from the active site to
the other datacenter, on a thread of its own: the checks take seconds
(an Ansible run on the standby's hosts), the decision cycle never waits for them. A
follower never evaluates; a new leader evaluates once it has led for
min(evaluate_every, FIRST_AFTER_S), so a leadership that lasts seconds (an election
storm, a controller restarted) costs no Ansible run on a busy machine.

When the file changed, the evaluation is of the file as it is now (the controller itself
goes on with the topology it started with until restarted): a file that no longer
validates is one problem, naming its first faults.

`when_due` decides (pure, table-tested); `PlanWatch.evaluate_now` runs one evaluation
and keeps the result; `event_for` (findings.changed) names the hook event a new result
calls for, fired in one place, the daemon's `_plan_event`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.config import InvalidTopology, Topology, load_topology
from orchestrator.evaluate.findings import Evaluation, evaluation, problem

log = logging.getLogger("sitectl.controller")

# How often the thread wakes to compare the file's digest: a change is evaluated within this.
TICK_S = 5.0
# How long a new leader leads before its first evaluation (or evaluate_every, if shorter).
FIRST_AFTER_S = 60.0
Evaluate = Callable[[Topology, str], Evaluation]


def when_due(
    led_since: float,
    last_at: float | None,
    last_digest: str | None,
    now: float,
    digest: str | None,
    every: float,
) -> str | None:
    """Why an evaluation is due now, or None (pure). `led_since`, `last_at`, `now`:
    monotonic seconds; `last_at` None: none yet in this leadership; `digest` None: the
    file cannot be read now (not a change)."""
    if last_at is None:
        first = min(every, FIRST_AFTER_S)
        return f"leader for {first:g} s, first evaluation" if now - led_since >= first else None
    if digest is not None and last_digest is not None and digest != last_digest:
        return "the topology file changed"
    if now - last_at >= every:
        return f"{every:g} s since the last evaluation"
    return None


def file_digest(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def standby_of(topo: Topology, active: str) -> str | None:
    """The datacenter a move from `active` goes to (pure)."""
    return next((d for d in topo.datacenters() if d != active), None)


def _default_evaluate(topo: Topology, to_site: str) -> Evaluation:
    from orchestrator.evaluate.run import evaluate

    return evaluate(topo, to_site)


class PlanWatch:
    """The state of the leader's evaluations: when and on which file the last one ran,
    and its result. Used by one thread (the daemon's evaluation loop)."""

    def __init__(
        self,
        topo: Topology,
        evaluate: Evaluate = _default_evaluate,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.topo = topo
        self.every = topo.policy.evaluate_every
        self.tick = min(TICK_S, self.every)
        self._evaluate = evaluate
        self._clock, self._wall = clock, wall
        self._last_at: float | None = None
        self._led_since: float | None = None
        self._digest: str | None = file_digest(topo.source_file)
        self._started_digest = self._digest
        self.last: Evaluation | None = None

    def due(self) -> str | None:
        """Why to evaluate now (called each tick while leading), or None."""
        if self._led_since is None:
            self._led_since = self._clock()
        return when_due(
            self._led_since,
            self._last_at,
            self._digest,
            self._clock(),
            file_digest(self.topo.source_file),
            self.every,
        )

    def stood_down(self) -> None:
        """No longer the leader: the next leadership starts afresh."""
        self._last_at = self._led_since = None

    def evaluate_now(self, active: str) -> Evaluation | None:
        """Evaluate the move from `active` to the standby; None when there is none."""
        digest = file_digest(self.topo.source_file)
        to_site = standby_of(self.topo, active)
        if to_site is None:
            return None
        topo = self._current(digest, to_site)
        if isinstance(topo, Evaluation):
            result = topo
        else:
            result = self._evaluate(topo.model_copy(update={"active_site": active}), to_site)
        self._last_at = self._clock()
        self._digest = digest or self._digest
        self.last = result
        return result

    def _current(self, digest: str | None, to_site: str) -> Topology | Evaluation:
        """The topology to evaluate: the one the controller runs with, unless the file
        changed since it started; then the file as it is now, or why it cannot be."""
        path = self.topo.source_file
        if path is None or digest is None or digest == self._started_digest:
            return self.topo
        try:
            return load_topology(path)
        except InvalidTopology as exc:
            first = "; ".join(str(p) for p in exc.problems[:3])
            found = problem("topology", str(path), f"the changed file does not validate: {first}")
            return evaluation(to_site, [found], self._wall())
