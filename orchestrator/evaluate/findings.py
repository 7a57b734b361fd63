"""What an evaluation found, and the verdict on it. Pure: no I/O.

Every check returns findings, one per thing it looked at: the check's name (`ansible`,
`playbook`, `tsig`, `mount`, `service`, `zookeeper`, `readiness`), its subject (a host,
a file, a zone, a volume…), an outcome and one plain sentence. A `note` is what cannot
be checked without changing something (a NetApp export, a `command` volume): said, never
counted against the move. The move is ready when no finding is a problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

SCHEMA = "sitectl.evaluation/v1"


class Outcome(StrEnum):
    OK = "ok"
    PROBLEM = "problem"
    NOTE = "note"  # not checkable without a change: said, not counted


@dataclass(frozen=True)
class Finding:
    check: str
    subject: str
    outcome: Outcome
    reason: str  # one plain sentence

    @property
    def ok(self) -> bool:
        return self.outcome is not Outcome.PROBLEM

    def describe(self) -> str:
        return f"{self.check} {self.subject}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "subject": self.subject,
            "outcome": self.outcome.value,
            "ok": self.ok,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            str(data["check"]), str(data["subject"]), Outcome(data["outcome"]), str(data["reason"])
        )


def ok(check: str, subject: str, reason: str) -> Finding:
    return Finding(check, subject, Outcome.OK, reason)


def problem(check: str, subject: str, reason: str) -> Finding:
    return Finding(check, subject, Outcome.PROBLEM, reason)


def note(check: str, subject: str, reason: str) -> Finding:
    return Finding(check, subject, Outcome.NOTE, reason)


@dataclass(frozen=True)
class Evaluation:
    to_site: str
    at: float  # when it ended, epoch seconds
    findings: tuple[Finding, ...]
    seconds: float = 0.0  # how long it took

    @property
    def problems(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.outcome is Outcome.PROBLEM)

    @property
    def ready(self) -> bool:
        return not self.problems

    def problem_checks(self) -> list[str]:
        """The checks that found a problem, each once, in the order found."""
        return list(dict.fromkeys(f.check for f in self.problems))

    def describe(self) -> str:
        """The verdict in one sentence: the log line, the status line, the CLI's last."""
        if self.ready:
            notes = sum(1 for f in self.findings if f.outcome is Outcome.NOTE)
            extra = f" ({notes} not checkable, see notes)" if notes else ""
            return (
                f"a move to {self.to_site} could run now: {len(self.findings)} checks "
                f"passed{extra}."
            )
        shown = "; ".join(f.describe() for f in self.problems[:5])
        more = f"; and {len(self.problems) - 5} more" if len(self.problems) > 5 else ""
        return f"a move to {self.to_site} could not run now: {shown}{more}."

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "to_site": self.to_site,
            "ready": self.ready,
            "at": self.at,
            "seconds": round(self.seconds, 3),
            "verdict": self.describe(),
            "problems": [f.to_dict() for f in self.problems],
            "findings": [f.to_dict() for f in self.findings],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(
            to_site=str(data["to_site"]),
            at=float(data["at"]),
            findings=tuple(Finding.from_dict(f) for f in data.get("findings", [])),
            seconds=float(data.get("seconds", 0.0)),
        )


def evaluation(
    to_site: str, findings: Iterable[Finding], at: float, seconds: float = 0.0
) -> Evaluation:
    """The findings in a stable order: problems first, then by check and subject, so two
    evaluations of the same state read (and compare) alike."""
    rank = {Outcome.PROBLEM: 0, Outcome.NOTE: 1, Outcome.OK: 2}
    ordered = sorted(findings, key=lambda f: (rank[f.outcome], f.check, f.subject))
    return Evaluation(to_site, at, tuple(ordered), seconds)


def changed(before: Evaluation | None, after: Evaluation) -> str | None:
    """The hook event a new evaluation calls for (pure): `plan-not-ready` when a move
    that could run (or was never evaluated) no longer can, `plan-ready` when it can
    again; None when the verdict did not change."""
    if before is None or before.to_site != after.to_site:
        return None if after.ready else "plan-not-ready"
    if before.ready == after.ready:
        return None
    return "plan-ready" if after.ready else "plan-not-ready"
