"""The data-readiness gate: what would a move to `to_site` lose, against the RPO limits.

Computed from the target's side of every replicator, so it still answers when the old
site is gone:
- volumes: the age of the newest snapshot the target's replica holds (the driver's lag);
- LDAP: per writer (sid) of the other site, how far the best-placed target master is
  behind that writer's own newest change; when the writer does not answer, an upper
  bound: the age of the newest change from it that the target holds;
- object store: the source's backlog or the canary's replication time; when the source
  does not answer, the age of the newest canary the target holds (an upper bound).
Upper bounds are conservative: on a quiet system they over-estimate, so a failover after
a site loss may be refused until someone accepts the loss. A regular canary write (the
controller's job) keeps them tight. Unknown (None) refuses too: not knowing is not safe.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from orchestrator.checks import ldap, mirrors, object_store
from orchestrator.checks.result import CheckResult, Status, Sweep
from orchestrator.checks.sweep import run_checks
from orchestrator.config.model import Topology

SYSTEMS = ("mirrors", "ldap", "object-store")


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # None: unknown
    subject: str = ""  # the replicator that sets the figure, e.g. "volume mirror mailstore"
    why: str = ""  # for unknown values and upper bounds: where the figure comes from


@dataclass(frozen=True)
class Readiness:
    to_site: str
    ready: bool
    loss: Mapping[str, float | None]
    limits: Mapping[str, float]
    reasons: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # how upper bounds were obtained
    # Each replicator's own figure (a volume's mirror, an LDAP writer, a bucket), of which
    # `loss` keeps the worst per kind; None: unknown.
    replicators: Mapping[str, float | None] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "loss", MappingProxyType(dict(self.loss)))
        object.__setattr__(self, "limits", MappingProxyType(dict(self.limits)))
        object.__setattr__(self, "replicators", MappingProxyType(dict(self.replicators)))

    def describe(self) -> str:
        if not self.ready:
            return f"not ready to move to {self.to_site}: " + "; ".join(self.reasons) + "."
        if not self.loss:
            return f"ready to move to {self.to_site}: no replicated data is configured."
        figures = ", ".join(f"{_label(k)} {v:.1f} s" for k, v in self.loss.items() if v is not None)
        return f"ready to move to {self.to_site}: estimated loss {figures}, within the RPO limits."

    def to_json(self) -> dict[str, object]:
        return {
            "to_site": self.to_site,
            "ready": self.ready,
            "loss": dict(self.loss),
            "limits": dict(self.limits),
            "replicators": dict(self.replicators),
            "reasons": list(self.reasons),
            "notes": list(self.notes),
            "verdict": self.describe(),
        }


def readiness(
    topo: Topology,
    to_site: str,
    sweep: Sweep | None = None,
    *,
    clock: Callable[[], float] = time.time,
) -> Readiness:
    """The verdict for `to_site`; runs a sweep of the replicators if none is given."""
    limits = topo.policy.rpo_limits
    if to_site not in topo.datacenters():
        known = ", ".join(topo.datacenters())
        return Readiness(
            to_site, False, {}, {}, (f"{to_site} is not a datacenter of this topology ({known})",)
        )
    if sweep is None:
        sweep = run_checks(topo, SYSTEMS)
    estimates: dict[str, Estimate] = {}
    each: dict[str, float | None] = {}
    if topo.volumes:
        estimates["volume"] = volume_loss(topo, to_site, sweep.for_system(mirrors.SYSTEM), each)
    if topo.ldap is not None:
        estimates["ldap"] = ldap_loss(topo, to_site, sweep.for_system(ldap.SYSTEM), clock(), each)
    if topo.object_store is not None:
        estimates["object_store"] = object_store_loss(
            topo, to_site, sweep.for_system(object_store.SYSTEM), each
        )
    bounds = {"volume": limits.volume, "ldap": limits.ldap, "object_store": limits.object_store}
    found = verdict(to_site, estimates, {k: bounds[k] for k in estimates})
    return replace(found, replicators=each)


def verdict(
    to_site: str, estimates: Mapping[str, Estimate], limits: Mapping[str, float]
) -> Readiness:
    """Ready only if every estimate is known and within its limit (pure)."""
    reasons, notes = [], []
    for kind, estimate in estimates.items():
        limit = limits[kind]
        if estimate.seconds is None:
            reasons.append(f"{_label(kind)} loss is unknown: {estimate.why}")
            continue
        if estimate.why:
            notes.append(f"{_label(kind)}: {estimate.why}")
        if estimate.seconds > limit:
            subject = estimate.subject or _label(kind)
            reasons.append(
                f"{subject} lags {estimate.seconds:.0f} s, over the {limit:g} s "
                f"limit by {estimate.seconds - limit:.0f} s"
                + (f" ({estimate.why})" if estimate.why else "")
            )
    return Readiness(
        to_site,
        not reasons,
        {k: e.seconds for k, e in estimates.items()},
        limits,
        tuple(reasons),
        tuple(notes),
    )


def _label(kind: str) -> str:
    return {"volume": "volume mirrors", "ldap": "LDAP", "object_store": "object store"}[kind]


# --- volumes --------------------------------------------------------------------


def volume_loss(
    topo: Topology,
    to_site: str,
    results: Sequence[CheckResult],
    each: dict[str, float | None] | None = None,
) -> Estimate:
    """The worst volume's estimate (an unknown one first); `each` gets every volume's."""
    ones = []
    for volume in topo.volumes:
        found = next((r for r in results if r.target == mirrors.target(volume.name)), None)
        ones.append(_one_volume(volume.name, to_site, found))
        if each is not None:
            each[f"volume mirror {volume.name}"] = ones[-1].seconds
    return _worst(ones)


def _worst(ones: Sequence[Estimate]) -> Estimate:
    unknown = [one for one in ones if one.seconds is None]
    if unknown:
        return unknown[0]
    return max(ones, key=lambda one: one.seconds or 0.0, default=Estimate(0.0))


def _one_volume(name: str, to_site: str, result: CheckResult | None) -> Estimate:
    if result is None or result.status is Status.DOWN:
        why = result.reason if result else "not checked"
        return Estimate(None, why=f"mirror {name}'s state could not be read ({why})")
    if result.site != to_site:
        return Estimate(0.0)  # the target holds the writable side already
    if result.figures.get("state") == mirrors.STATE_CODES[mirrors.MirrorState.BROKEN]:
        return Estimate(0.0)  # broken off towards the target: it is writable already
    lag = result.figures.get("lag_seconds")
    if lag is None:
        return Estimate(None, why=f"mirror {name} has never transferred a snapshot")
    return Estimate(lag, f"volume mirror {name}")


# --- LDAP -----------------------------------------------------------------------


def ldap_loss(
    topo: Topology,
    to_site: str,
    results: Sequence[CheckResult],
    now: float,
    each: dict[str, float | None] | None = None,
) -> Estimate:
    """The worst writer's loss; `each` gets every writer's (sid) of the other site."""
    assert topo.ldap is not None
    each = {} if each is None else each
    seen = ldap.views(results)
    masters = topo.ldap.masters
    held_by_target = [seen[m.uri] for m in masters if m.site == to_site and m.uri in seen]
    if not held_by_target:
        return Estimate(None, why=f"no LDAP master in {to_site} answered")
    worst, bounded, subject = 0.0, [], "LDAP"
    for writer in (m for m in masters if m.site != to_site):
        sid = writer.server_id
        held = max((v[sid] for v in held_by_target if sid in v), default=None)
        name = f"LDAP sid {sid} ({writer.uri})"
        if writer.uri in seen:
            own = seen[writer.uri].get(sid)
            if own is None:
                each[name] = 0.0
                continue  # it never wrote: nothing of it to lose
            if held is None:
                each[name] = None
                return Estimate(None, why=f"{to_site} holds no change written at sid {sid}")
            each[name] = max(0.0, own - held)
            if own - held > worst:
                worst, subject = own - held, name
        elif held is not None:
            # The writer is silent: everything after the newest change we hold may be lost.
            each[name] = max(0.0, now - held)
            if now - held > worst:
                worst, subject = now - held, name
            bounded.append(sid)
        elif any(sid in v for v in seen.values()):
            each[name] = None
            return Estimate(
                None, why=f"sid {sid} does not answer and {to_site} holds none of its changes"
            )
    why = (
        (
            f"upper bound: sid {', '.join(map(str, bounded))} did not answer, so this is the "
            f"age of the newest change from it that {to_site} holds"
        )
        if bounded
        else ""
    )
    return Estimate(max(0.0, worst), subject, why)


# --- object store ---------------------------------------------------------------


def object_store_loss(
    topo: Topology,
    to_site: str,
    results: Sequence[CheckResult],
    each: dict[str, float | None] | None = None,
) -> Estimate:
    """The worst replicated bucket's estimate; `each` gets every bucket's."""
    assert topo.object_store is not None
    if to_site == topo.active_site:
        return Estimate(0.0)
    ones = []
    for bucket in (b for b in topo.object_store.buckets if b.replicated):
        ones.append(_one_bucket(bucket.name, topo.active_site, to_site, results))
        if each is not None:
            each[f"bucket {bucket.name}"] = ones[-1].seconds
    return _worst(ones)


def _one_bucket(bucket: str, source: str, to_site: str, results: Sequence[CheckResult]) -> Estimate:
    by_target = {r.target: r for r in results}
    mine = by_target.get(object_store.bucket_target(bucket, to_site))
    if mine is None or mine.status is Status.DOWN:
        why = mine.reason if mine else "not checked"
        return Estimate(None, why=f"bucket {bucket}@{to_site} cannot be read ({why})")
    for name in (
        object_store.bucket_target(bucket, source),
        object_store.canary_target(bucket, source, to_site),
    ):
        found = by_target.get(name)
        if found is not None and object_store.LAG in found.figures:
            return Estimate(found.figures[object_store.LAG], f"bucket {bucket}")
    age = mine.figures.get(object_store.CANARY_AGE)
    if age is not None:
        return Estimate(
            age,
            f"bucket {bucket}",
            f"upper bound: the newest canary {to_site} holds is {age:.0f} s old",
        )
    return Estimate(
        None,
        why=f"{source}'s store reported no backlog and {to_site} holds no "
        f"canary of bucket {bucket} to date replication by (run the canary)",
    )
