"""The readiness gate's figures, as the move's own gate would judge them now."""

from __future__ import annotations

from orchestrator.checks import Readiness, readiness, run_checks
from orchestrator.config.model import Topology
from orchestrator.evaluate.findings import Finding, ok, problem

CHECK = "readiness"


def judge_readiness(verdict: Readiness) -> list[Finding]:
    """One finding per replicated kind (pure): its estimated loss against its limit."""
    out = []
    for kind, loss in verdict.loss.items():
        shown = "unknown" if loss is None else f"{loss:.1f} s"
        limit = verdict.limits.get(kind)
        within = loss is not None and limit is not None and loss <= limit
        sentence = f"estimated loss {shown}, limit {limit:g} s" if limit is not None else shown
        out.append((ok if within else problem)(CHECK, kind, sentence))
    if not verdict.ready and all(f.ok for f in out):
        # Refused for a reason no figure carries (an unknown site, nothing measured).
        out.append(problem(CHECK, verdict.to_site, verdict.describe()))
    return out


def check_readiness(topo: Topology, to_site: str) -> list[Finding]:
    sweep = run_checks(topo, ["mirrors", "ldap", "object-store"])
    return judge_readiness(readiness(topo, to_site, sweep))
