"""The persisted state of one mirror relationship and its transitions — pure, no I/O.

Drivers load a `Relationship`, ask `decide()` what an operation means in the current
state (do it, nothing to do, or refuse), perform the side effects, then record the result
with the `with_*` helpers and save. Keeping the rules here lets them be table-tested
without volumes, and keeps every driver's idempotency identical.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.storage.model import MirrorState, MirrorStatus

HISTORY_KEEP = 20  # recent operations kept in the state file for post-mortems


class Op(StrEnum):
    TRANSFER = "transfer"  # a scheduled transfer (the daemon)
    UPDATE = "update"  # an explicit transfer (final sync)
    QUIESCE = "quiesce"
    RESUME = "resume"
    BREAK = "break"
    REVERSE = "reverse"


class Verdict(StrEnum):
    APPLY = "apply"
    NOOP = "noop"  # already true: idempotent repeat
    SKIP = "skip"  # not now (a scheduled transfer while quiesced or broken)
    REFUSE = "refuse"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str


@dataclass(frozen=True)
class Relationship:
    """Everything a driver must remember across restarts. Serialised as JSON."""

    name: str
    source: str
    destination: str
    state: MirrorState = MirrorState.MIRRORED
    seq: int = 0  # number of the newest snapshot created (names are `<subvol>@<seq>`)
    last_snapshot: str | None = None  # newest snapshot present on both sides
    last_snapshot_created: float | None = None
    last_transfer_at: float | None = None
    last_transfer_duration: float | None = None
    last_error: str | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    # --- serialisation ---

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["state"] = self.state.value
        data["history"] = list(self.history)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Relationship:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["state"] = MirrorState(values.get("state", MirrorState.MIRRORED))
        values["history"] = tuple(values.get("history", ()))
        return cls(**values)

    # --- recording results ---

    def _log(self, at: float, op: Op, outcome: str) -> tuple[dict[str, Any], ...]:
        entry = {"at": round(at, 3), "op": op.value, "outcome": outcome}
        return (*self.history, entry)[-HISTORY_KEEP:]

    def with_state(self, state: MirrorState, at: float, op: Op, outcome: str) -> Relationship:
        return dataclasses.replace(self, state=state, history=self._log(at, op, outcome))

    def with_transfer(
        self, snapshot: str, seq: int, created: float, finished: float, duration: float, op: Op
    ) -> Relationship:
        return dataclasses.replace(
            self,
            seq=seq,
            last_snapshot=snapshot,
            last_snapshot_created=created,
            last_transfer_at=finished,
            last_transfer_duration=duration,
            last_error=None,
            history=self._log(
                finished, op, f"transferred {snapshot} {self.source}→{self.destination}"
            ),
        )

    def with_error(self, at: float, op: Op, error: str) -> Relationship:
        return dataclasses.replace(self, last_error=error, history=self._log(at, op, error))


def decide(rel: Relationship, op: Op, new_source: str | None = None) -> Decision:
    """What `op` means in `rel`'s current state. Pure; the table in the tests is the spec."""
    state = rel.state
    if op is Op.TRANSFER:
        if state is MirrorState.MIRRORED:
            return Decision(Verdict.APPLY, "scheduled transfer")
        return Decision(Verdict.SKIP, f"no scheduled transfer while {state.value}")
    if op is Op.UPDATE:
        if state is MirrorState.BROKEN:
            return Decision(Verdict.REFUSE, "broken: the destination is writable; reverse first")
        return Decision(Verdict.APPLY, f"transfer now ({state.value})")
    if op is Op.QUIESCE:
        if state is MirrorState.MIRRORED:
            return Decision(Verdict.APPLY, "pause scheduled transfers")
        return Decision(Verdict.NOOP, f"already {state.value}: no transfers run")
    if op is Op.RESUME:
        if state is MirrorState.QUIESCED:
            return Decision(Verdict.APPLY, "resume scheduled transfers")
        if state is MirrorState.MIRRORED:
            return Decision(Verdict.NOOP, "already mirrored")
        return Decision(
            Verdict.REFUSE,
            "broken: resuming would overwrite a writable destination; reverse instead",
        )
    if op is Op.BREAK:
        if state is MirrorState.BROKEN:
            return Decision(Verdict.NOOP, "already broken")
        if rel.last_snapshot is None:
            return Decision(Verdict.REFUSE, "nothing transferred yet: the destination is empty")
        return Decision(Verdict.APPLY, f"make {rel.destination} writable from {rel.last_snapshot}")
    if op is Op.REVERSE:
        target = new_source or (rel.destination if state is MirrorState.BROKEN else None)
        if target is not None and target == rel.source and state is not MirrorState.BROKEN:
            return Decision(Verdict.NOOP, f"already mirrored from {target}")
        if state is not MirrorState.BROKEN:
            return Decision(Verdict.REFUSE, f"{state.value}: break the relationship first")
        if target != rel.destination:
            return Decision(
                Verdict.REFUSE,
                f"only {rel.destination} (the broken-off destination) can "
                f"become the source, not {target}",
            )
        return Decision(Verdict.APPLY, f"mirror {rel.destination} back to {rel.source}")
    raise ValueError(f"unknown operation {op!r}")  # pragma: no cover - Op is closed


def status_of(rel: Relationship, now: float, max_lag_seconds: float) -> MirrorStatus:
    """The driver-independent status: lag is the age of the newest snapshot on both sides.

    Healthy means the last attempt succeeded and, while mirrored, the lag is within
    `max_lag_seconds`. Quiesced and broken are deliberate states, so they stay healthy;
    their growing lag is still reported for the caller to judge.
    """
    lag = None if rel.last_snapshot_created is None else max(0.0, now - rel.last_snapshot_created)
    lag_ok = lag is not None and lag <= max_lag_seconds
    healthy = rel.last_error is None and (rel.state is not MirrorState.MIRRORED or lag_ok)
    return MirrorStatus(
        name=rel.name,
        source=rel.source,
        destination=rel.destination,
        state=rel.state,
        last_snapshot=rel.last_snapshot,
        last_transfer_at=rel.last_transfer_at,
        last_transfer_duration=rel.last_transfer_duration,
        lag_seconds=lag,
        healthy=healthy,
        last_error=rel.last_error,
    )
