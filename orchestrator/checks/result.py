"""What every check returns: a status, one plain sentence and figures.

A check never raises for a "down" answer: silence, refusal and nonsense are all
results, so a sweep is a complete picture even when half the world is gone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType


class Status(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"
    DOWN = "down"


_RANK = {Status.OK: 0, Status.DEGRADED: 1, Status.DOWN: 2}


def worst_of(statuses: list[Status] | tuple[Status, ...]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default=Status.OK)


# The figure that marks a finding of two sites serving (two application sites answering,
# two DNS primaries for a zone): down, told to the `split-brain` hook, counted by the
# `sitectl_split_brain` metric, never a reason to refuse the operation that ends it.
SPLIT_BRAIN = "split_brain"


@dataclass(frozen=True)
class CheckResult:
    system: str  # one of sweep.SYSTEMS: "zookeeper", "ldap", ..., "application", "parity"
    site: str | None  # where the checked thing lives; None: cluster-wide
    target: str  # e.g. "ldap://127.0.2.11:389", "bucket mail-blobs@dc2"
    status: Status
    reason: str  # one plain sentence, "" when ok
    figures: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Frozen all the way down: a sweep is a snapshot that decisions are taken on.
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))

    def describe(self) -> str:
        where = f"{self.site} " if self.site else ""
        text = f"{self.system} {where}{self.target}: {self.status.value}"
        return f"{text} — {self.reason}" if self.reason else text

    @property
    def split_brain(self) -> bool:
        return self.figures.get(SPLIT_BRAIN, 0.0) > 0

    def to_json(self) -> dict[str, object]:
        return {
            "system": self.system,
            "site": self.site,
            "target": self.target,
            "status": self.status.value,
            "reason": self.reason,
            "figures": dict(self.figures),
        }


@dataclass(frozen=True)
class Sweep:
    results: tuple[CheckResult, ...]
    seconds: float = 0.0  # how long the sweep took (for the bench and the log line)

    def worst(self) -> Status:
        return worst_of([r.status for r in self.results])

    def split_brains(self) -> list[CheckResult]:
        return [r for r in self.results if r.split_brain]

    def for_system(self, system: str) -> list[CheckResult]:
        return [r for r in self.results if r.system == system]

    def to_json(self) -> dict[str, object]:
        return {
            "status": self.worst().value,
            "seconds": round(self.seconds, 3),
            "results": [r.to_json() for r in self.results],
        }


@dataclass(frozen=True)
class Check:
    """One bounded unit of work of a sweep. `run(timeout)` must honour the timeout and
    return a result for every outcome; the sweep still cuts it off if it does not."""

    system: str
    site: str | None
    target: str
    run: Callable[[float], CheckResult]

    def result(
        self, status: Status, reason: str = "", figures: Mapping[str, float] | None = None
    ) -> CheckResult:
        return CheckResult(self.system, self.site, self.target, status, reason, figures or {})


def one_line(text: object, limit: int = 200) -> str:
    """Library messages may span lines or run long; a reason is one short sentence."""
    return " ".join(str(text).split())[:limit]
