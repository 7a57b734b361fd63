"""What a drill records: plain data, written as report.json and read back by the report,
the measurements and `sitectl drill history`.

The record holds only what was observed (times, answers, step records); every figure
and verdict is computed from it by `measure`, so a report re-rendered from an old
report.json says exactly what the original said.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SCHEMA = 1


@dataclass
class Canary:
    """One write made at a site so that its survival can be checked at another."""

    kind: str  # "smtp" (the numbered series), "probe" (a write-probe message), "ldap", "s3"
    key: str  # the message subject, the LDAP token, the S3 object key
    site: str  # where it was written
    written_at: float  # when the server accepted it (UNIX time)
    found: bool | None = None  # at the leg's new site: None = not checked (the drill stopped)
    detail: str = ""


@dataclass
class Attempt:
    """One try of the write-probe loop: an SMTP message to wherever DNS pointed."""

    at: float  # when the answer came (UNIX time)
    site: str | None  # the site DNS pointed at; None: no DNS answer
    address: str
    accepted: bool
    detail: str = ""
    key: str = ""  # the subject, when accepted


@dataclass
class StepRun:
    step_id: str
    status: str
    started: float | None
    finished: float | None
    attempts: int = 0
    detail: str = ""


@dataclass
class OperationRun:
    """One engine operation as the engine recorded it (ZooKeeper checkpoints)."""

    id: str
    mode: str
    from_site: str
    to_site: str
    status: str
    started: float
    finished: float | None
    failed_step: str | None = None
    message: str = ""
    steps: list[StepRun] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Verification:
    """One end-to-end check made by the drill itself (not by the engine)."""

    name: str  # e.g. "mail delivered over SMTP, read over IMAP"
    site: str
    ok: bool
    detail: str
    started: float
    finished: float


@dataclass
class Phase:
    """A stretch of the drill on its timeline: preflight, canaries, switchover, …"""

    name: str
    started: float
    finished: float | None = None
    ok: bool | None = None  # None: did not finish
    detail: str = ""


@dataclass
class Leg:
    """One move of the service and everything measured around it."""

    name: str  # "there", "back", or "protect" (the failback's last reprotect)
    from_site: str
    to_site: str
    canaries: list[Canary] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    operations: list[OperationRun] = field(default_factory=list)
    verifications: list[Verification] = field(default_factory=list)
    # False for a leg that only reprotects: it has checks and an operation but no move,
    # so no RTO or RPO. Its canaries are the writes it must see replicated to to_site.
    moves: bool = True


@dataclass
class CheckRow:
    """One health-check result, flattened from a checks.Sweep."""

    system: str
    site: str | None
    target: str
    status: str  # ok | degraded | down
    reason: str = ""


@dataclass
class Snapshot:
    """Health and readiness at one moment (before the drill, after it)."""

    label: str
    at: float
    active_site: str
    checks: list[CheckRow] = field(default_factory=list)
    readiness: dict[str, Any] = field(default_factory=dict)


@dataclass
class Targets:
    rto_s: float
    rpo_s: float
    source: dict[str, str] = field(default_factory=dict)  # "rto" → where it came from


@dataclass
class DrillRecord:
    id: str
    cluster: str
    from_site: str
    to_site: str
    failback: bool
    started: float
    by: str  # OS user
    host: str
    reason: str
    targets: Targets
    finished: float | None = None
    phases: list[Phase] = field(default_factory=list)
    legs: list[Leg] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)
    active_site: str | None = None  # at the end, as sitectl recorded it (ZooKeeper)
    # After a failed move the recorded site is not the whole truth: the engine's sentence
    # on where the data and the service are ("dc2 holds the data and DNS points at it; …").
    where: str = ""
    stopped: str = ""  # why the drill stopped early, "" if it ran to the end
    advice: list[str] = field(default_factory=list)  # how to resume or roll back
    audit_log: str = ""
    schema: int = SCHEMA

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DrillRecord:
        data = dict(data)
        data["targets"] = Targets(**data["targets"])
        data["phases"] = [Phase(**p) for p in data.get("phases", [])]
        data["snapshots"] = [
            Snapshot(**{**s, "checks": [CheckRow(**c) for c in s.get("checks", [])]})
            for s in data.get("snapshots", [])
        ]
        data["legs"] = [_leg(leg) for leg in data.get("legs", [])]
        data.pop("figures", None)  # derived; report.json carries them for readers only
        data.pop("verdict", None)
        return cls(**data)


def _leg(data: dict[str, Any]) -> Leg:
    return Leg(
        name=data["name"],
        from_site=data["from_site"],
        to_site=data["to_site"],
        canaries=[Canary(**c) for c in data.get("canaries", [])],
        attempts=[Attempt(**a) for a in data.get("attempts", [])],
        operations=[
            OperationRun(**{**o, "steps": [StepRun(**s) for s in o.get("steps", [])]})
            for o in data.get("operations", [])
        ],
        verifications=[Verification(**v) for v in data.get("verifications", [])],
        moves=data.get("moves", True),  # reports written before protect legs were recorded
    )
