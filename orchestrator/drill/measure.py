"""Figures and verdicts of a drill, computed from its record alone (pure: no clock, no I/O).

RTO, as a client sees it: from the last write the old site accepted to the first write
the new site accepted, both taken from the write-probe loop, which keeps sending mail
to wherever DNS points while the service moves.

RPO, as observed: canaries (and probe writes) accepted at the old site but absent at
the new one are lost. The figure is the span of time whose writes are gone: from the
recovery point (the newest surviving write older than the first lost one) to the last
write the old site accepted. With no surviving older write it is a lower bound, said so.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from orchestrator.config.model import DrillTargets
from orchestrator.drill.model import Canary, DrillRecord, Leg, Targets

# A switchover stops writes before the final transfer: it promises no loss at all, so a
# drill fails on the first lost write unless the operator names a looser target.
DEFAULT_RPO_S = 0.0
# The topology names no RTO; five minutes is the usual contractual figure for a planned
# move of a mail service. Said in the report as "default" so nobody mistakes it for policy.
DEFAULT_RTO_S = 300.0

_TARGET = re.compile(r"^\s*(rto|rpo)\s*=\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class BadTargets(ValueError):
    pass


def parse_targets(text: str) -> dict[str, float]:
    """`rto=90s,rpo=0` → {"rto": 90.0, "rpo": 0.0}; BadTargets names the bad part."""
    found: dict[str, float] = {}
    for part in (p for p in text.split(",") if p.strip()):
        match = _TARGET.match(part)
        if not match:
            raise BadTargets(
                f"--targets: {part.strip()!r} is not NAME=DURATION — write e.g. rto=90s,rpo=0s"
            )
        found[match.group(1)] = float(match.group(2)) * _UNIT[match.group(3)]
    if found.get("rto") == 0:
        # No move is instant: a zero RTO would fail every drill, whatever it showed.
        raise BadTargets(
            "--targets: an RTO of 0 cannot be met — give the longest outage a "
            "drill may show, e.g. rto=5m"
        )
    return found


TOPOLOGY_SOURCE = "topology: policy.drill_targets"
_DEFAULT = {
    "rto": (DEFAULT_RTO_S, "default: the topology names no RTO"),
    "rpo": (DEFAULT_RPO_S, "default: a drill expects no loss"),
}


def targets(given: dict[str, float] | None = None, policy: DrillTargets | None = None) -> Targets:
    """Each target from `--targets` (this drill's own), else the topology's policy, else the
    default; `source` says which, so a report never passes off a default as policy."""
    given = given or {}
    chosen: dict[str, tuple[float, str]] = {}
    for name, fallback in _DEFAULT.items():
        from_topology = getattr(policy, name, None) if policy is not None else None
        if name in given:
            chosen[name] = (given[name], "--targets")
        elif from_topology is not None:
            chosen[name] = (from_topology, TOPOLOGY_SOURCE)
        else:
            chosen[name] = fallback
    return Targets(
        chosen["rto"][0], chosen["rpo"][0], {name: source for name, (_, source) in chosen.items()}
    )


@dataclass(frozen=True)
class Rto:
    seconds: float | None  # None: not measured, `why` says why
    last_old: float | None = None
    first_new: float | None = None
    why: str = ""


@dataclass(frozen=True)
class Rpo:
    seconds: float | None  # None: unknown (canaries not checked)
    lower_bound: bool = False
    lost: int = 0
    checked: int = 0
    unchecked: int = 0
    by_kind: dict[str, list[int]] = field(default_factory=dict)  # kind → [lost, written]
    lost_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class LegFigures:
    name: str
    from_site: str
    to_site: str
    rto: Rto
    rpo: Rpo
    rto_ok: bool
    rpo_ok: bool
    operation_seconds: float | None
    verifications_ok: bool
    moved: bool  # the leg's move ran (succeeded or not); False: the drill stopped before it


@dataclass(frozen=True)
class Verdict:
    passed: bool
    failures: tuple[str, ...]
    legs: tuple[LegFigures, ...]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def rto(leg: Leg) -> Rto:
    accepted = sorted((a for a in leg.attempts if a.accepted), key=lambda a: a.at)
    old = [a for a in accepted if a.site == leg.from_site]
    if not old:
        return Rto(None, why=f"the write probe never reached {leg.from_site}")
    last_old = old[-1].at
    new = [a for a in accepted if a.site == leg.to_site and a.at > last_old]
    if not new:
        return Rto(None, last_old, why=f"no write was accepted at {leg.to_site} afterwards")
    return Rto(new[0].at - last_old, last_old, new[0].at)


def rpo(leg: Leg) -> Rpo:
    written = [c for c in leg.canaries if c.site == leg.from_site]
    checked = [c for c in written if c.found is not None]
    lost = sorted((c for c in checked if not c.found), key=lambda c: c.written_at)
    by_kind: dict[str, list[int]] = {}
    for c in written:
        counts = by_kind.setdefault(c.kind, [0, 0])
        counts[0] += 1 if c.found is False else 0
        counts[1] += 1
    unchecked = len(written) - len(checked)
    if not lost:
        return Rpo(None if unchecked else 0.0, False, 0, len(checked), unchecked, by_kind)
    # Each replicator has its own recovery point: an LDAP change that survived says
    # nothing about mail the volume mirror did not carry. The worst replicator sets RPO.
    spans = [
        _lost_span(
            [c for c in lost if REPLICATOR[c.kind] == name],
            [c for c in checked if REPLICATOR[c.kind] == name],
        )
        for name in sorted({REPLICATOR[c.kind] for c in lost})
    ]
    seconds, bound = max(spans)
    return Rpo(
        seconds, bound, len(lost), len(checked), unchecked, by_kind, tuple(c.key for c in lost)
    )


# Which replicator carries each kind of canary to the other site.
REPLICATOR = {"smtp": "volume", "probe": "volume", "ldap": "ldap", "s3": "object_store"}


def _lost_span(lost: list[Canary], checked: list[Canary]) -> tuple[float, bool]:
    """(seconds, lower bound?) for one replicator's canaries, oldest lost first."""
    first_lost = lost[0].written_at
    last_written = max(c.written_at for c in checked)
    survivors = [c.written_at for c in checked if c.found and c.written_at < first_lost]
    if survivors:
        return last_written - max(survivors), False
    return last_written - first_lost, True


def operation_seconds(leg: Leg) -> float | None:
    """Wall time of the leg's switchover (the last operation of the leg)."""
    moves = [o for o in leg.operations if o.mode in ("switchover", "failover")]
    if not moves or moves[-1].finished is None:
        return None
    return moves[-1].finished - moves[-1].started


def leg_figures(leg: Leg, goal: Targets) -> LegFigures:
    r, p = rto(leg), rpo(leg)
    return LegFigures(
        name=leg.name,
        from_site=leg.from_site,
        to_site=leg.to_site,
        rto=r,
        rpo=p,
        rto_ok=r.seconds is not None and r.seconds <= goal.rto_s,
        rpo_ok=_rpo_ok(p, goal.rpo_s),
        operation_seconds=operation_seconds(leg),
        verifications_ok=all(v.ok for v in leg.verifications) and bool(leg.verifications),
        moved=any(o.mode in ("switchover", "failover") for o in leg.operations),
    )


def _rpo_ok(p: Rpo, target: float) -> bool:
    if p.seconds is None:
        return False  # not knowing what was lost is not a pass
    if target == 0:
        return p.lost == 0  # one lost write spans 0 s yet breaks a zero-loss promise
    return p.seconds <= target


def verdict(record: DrillRecord) -> Verdict:
    """Passed only if every leg ran, met both targets and verified, and the service
    ended where the drill said it would: a drill that proves nothing does not pass.

    Figures come from the legs that move the service; a leg that only reprotects (the
    failback's last) has no RTO or RPO, but its operation and checks count like any other.
    """
    moving = [leg for leg in record.legs if leg.moves]
    legs = tuple(leg_figures(leg, record.targets) for leg in moving)
    failures: list[str] = []
    if record.stopped:
        failures.append(f"stopped early: {record.stopped}")
    expected_legs = 2 if record.failback else 1
    if len(legs) < expected_legs and not record.stopped:
        failures.append(f"{len(legs)} of {expected_legs} legs ran")
    figures = iter(legs)  # in the order of `moving`
    for leg in record.legs:
        failures += (
            _leg_failures(leg, next(figures), record.targets) if leg.moves else _check_failures(leg)
        )
    if not record.stopped:  # a stop names its failed phase already
        failures += [f"phase {p.name} failed: {p.detail}" for p in record.phases if p.ok is False]
    home = record.from_site if record.failback else record.to_site
    if record.active_site != home:
        failures.append(f"{record.active_site or 'no site'} is active at the end, not {home}")
    return Verdict(not failures, tuple(dict.fromkeys(failures)), legs)


def _check_failures(leg: Leg) -> list[str]:
    """The leg's engine operations that did not succeed and its checks that failed."""
    where = f"{leg.from_site}→{leg.to_site}"
    return [
        f"{op.mode} {where} {op.status} at step {op.failed_step}"
        for op in leg.operations
        if op.status != "succeeded"
    ] + [f"{where}: {v.name} on {v.site} failed: {v.detail}" for v in leg.verifications if not v.ok]


def _leg_failures(leg: Leg, figures: LegFigures, goal: Targets) -> list[str]:
    out = _check_failures(leg)
    where = f"{leg.from_site}→{leg.to_site}"
    failed = [op for op in leg.operations if op.status != "succeeded"]
    if not figures.moved or failed:
        # The drill stopped before or during this move: the figures cannot be complete,
        # and the failed step, not a missing figure, is the finding.
        return out
    if not figures.rto_ok:
        out.append(
            f"{where}: RTO {_seconds(figures.rto.seconds)} over the {goal.rto_s:g} s target"
            if figures.rto.seconds is not None
            else f"{where}: RTO not measured ({figures.rto.why})"
        )
    if not figures.rpo_ok:
        p = figures.rpo
        out.append(
            f"{where}: RPO unknown ({p.unchecked} canaries not checked)"
            if p.seconds is None
            else f"{where}: {p.lost} of {p.checked} writes lost, RPO "
            f"{'≥ ' if p.lower_bound else ''}{p.seconds:.1f} s over the {goal.rpo_s:g} s target"
        )
    return out


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"
