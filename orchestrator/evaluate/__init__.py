"""Plan evaluation: could a move run right now? Read-only checks, one module per kind,
each returning findings; `findings.py` (pure) holds the verdict, `run.evaluate` runs
them. Only the pure part is imported here: the controller's HTTP endpoint renders an
evaluation without loading Ansible."""

from orchestrator.evaluate.findings import Evaluation, Finding, Outcome, changed, evaluation

__all__ = ["Evaluation", "Finding", "Outcome", "changed", "evaluation"]
