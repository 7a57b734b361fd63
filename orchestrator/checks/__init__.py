"""Health and readiness: read-only, concurrent, bounded checks of every outside system.

What the engine calls::

    sweep = run_checks(topo, ["ldap", "dns"], sites=["dc2"], timeout=3.0)   # → Sweep
    sweep.worst(); sweep.for_system("ldap")                                # → Status, results
    blocking_problems(sweep, "ldap", from_site="dc1", to_site="dc2", mode="failover")
    readiness(topo, "dc2", sweep)            # → Readiness (ready, loss per replicator)

One module per system (`zookeeper`, `ldap`, `object_store`, `mirrors`, `dns`,
`application`, `parity`), each building `Check`s whose `run(timeout)` returns a
`CheckResult` for every outcome; `sweep` runs them on threads and cuts off stragglers;
`blocking` and `readiness` are pure functions of a sweep; `metrics` renders one for
Prometheus.
"""

from orchestrator.checks.blocking import blocking_problems
from orchestrator.checks.readiness import Readiness, readiness
from orchestrator.checks.result import Check, CheckResult, Status, Sweep
from orchestrator.checks.sweep import SYSTEMS, run_checks

__all__ = [
    "SYSTEMS",
    "Check",
    "CheckResult",
    "Readiness",
    "Status",
    "Sweep",
    "blocking_problems",
    "readiness",
    "run_checks",
]
