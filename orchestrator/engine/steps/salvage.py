"""The salvage steps of a reprotect (orchestrator/salvage): snapshot the old site's copy,
copy what only it holds into the active site, and decide (the LDAP report is in
salvage_ldap.py).

Every step is idempotent: each run lists both sides again and copies only what the
active site still lacks, so a resumed or repeated salvage adds no duplicates. The old
site is the plan's `to_site` (the standby a reprotect turns into the destination); the
active site is its `from_site`. What each step found and did goes into its checkpoint's
detail, the operation's figures (the drill report) and the audit log, one event per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from orchestrator.adapters.s3 import hold_fence, s3_client
from orchestrator.config.model import BtrfsVolume
from orchestrator.engine.handlers import StepContext
from orchestrator.engine.steps.objects import endpoint_of
from orchestrator.engine.steps.volumes import btrfs_mirror
from orchestrator.errors import Failed, Unavailable
from orchestrator.plan.model import Step
from orchestrator.salvage import maildir, objects, report
from orchestrator.salvage.divergence import (
    MailItem,
    ObjectCopy,
    Residual,
    decide,
    divergent_mail,
    divergent_objects,
    identities,
)
from orchestrator.storage import BtrfsMirror, btrfs
from orchestrator.storage.epochfence import fenced

# When the active site took over (the start of the last move to it), or None if no move
# is recorded; the engine reads it from the operation records.
Takeover = Callable[[], float | None]
SHOWN = 5  # identities named in a step's detail; the audit log has them all
T = TypeVar("T")


def shown(items: list[str]) -> str:
    more = f" and {len(items) - SHOWN} more" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more


def audit_event(ctx: StepContext, event: str, step: Step, **fields: Any) -> None:
    if ctx.audit is not None:
        ctx.audit.write(event, op=ctx.operation.id, step=step.id, epoch=ctx.fence.epoch, **fields)


def _listed(ctx: StepContext, what: str, list_it: Callable[[], T]) -> T | None:
    """`list_it()`; when it fails and the operator gave --discard-divergent, None (said
    and left to salvage/decide, which lists again and names it as not inspected).
    Without that reason the error stands: retried if transient, then the step fails
    and, before the mirrors were touched, the reprotect is refused."""
    try:
        return list_it()
    except (Unavailable, Failed) as exc:
        reason = ctx.operation.discard_divergent
        if not reason:
            raise
        ctx.log(f"{what} could not be listed ({exc}); going on: --discard-divergent {reason!r}")
        return None


class Summaries:
    """A handler's one-line result per step, which the engine adds to the checkpoint."""

    def __init__(self) -> None:
        self._said: dict[str, str] = {}

    def said(self, step: Step, sentence: str, ctx: StepContext) -> None:
        self._said[step.id] = sentence
        ctx.log(sentence)

    def summary(self, step: Step, ctx: StepContext) -> str | None:
        return self._said.get(step.id)


# -- volumes ------------------------------------------------------------------------


def _btrfs(ctx: StepContext, name: str) -> BtrfsMirror:
    vol = next((v for v in ctx.topology.volumes if v.name == name), None)
    if not isinstance(vol, BtrfsVolume):
        raise Failed(f"volume {name}: salvage reads btrfs copies only")
    mirror = btrfs_mirror(ctx.topology, vol)
    for site, paths in mirror.config.sites.items():
        if btrfs.mount_at(paths.pool) is None:
            raise Unavailable(
                f"volume {name}: {site}'s pool {paths.pool} is not mounted where sitectl "
                "runs, so its copy cannot be read from here"
            )
    return mirror


@dataclass(frozen=True)
class MailCopies:
    snapshot: Path | None  # the old site's copy as the snapshot step took it
    active: Path  # the active site's live copy
    divergent: list[MailItem]


def mail_divergence(ctx: StepContext, name: str, old_site: str) -> MailCopies:
    """What the old site's snapshot of volume `name` holds that neither the last common
    snapshot nor the active site's live copy does."""
    mirror = _btrfs(ctx, name)
    active = mirror.live_path(ctx.plan.from_site)
    snapshot = mirror.salvage_path(old_site, ctx.operation.id)
    if not btrfs.is_subvolume(snapshot):
        if btrfs.is_subvolume(mirror.live_path(old_site)):
            raise Failed(f"volume {name}: no salvage snapshot {snapshot} of {old_site}'s copy")
        return MailCopies(None, active, [])  # no live copy there: nothing outside the mirror
    base = mirror.common_snapshot(old_site)
    found = divergent_mail(
        maildir.scan(snapshot),
        identities(maildir.scan(base)) if base is not None else None,
        identities(maildir.scan(active)),
    )
    return MailCopies(snapshot, active, found)


class SnapshotHandler(Summaries):
    """salvage/snapshot/<volume>: a read-only snapshot of the old site's live copy, under
    the operation's id, through the storage driver (fenced by the epoch like its other
    actions)."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        mirror = _btrfs(ctx, step.target)
        return btrfs.is_subvolume(mirror.salvage_path(step.site or "", ctx.operation.id))

    def apply(self, step: Step, ctx: StepContext) -> None:
        mirror = _btrfs(ctx, step.target)
        site = step.site or ""
        keep = ctx.topology.policy.salvage_snapshots_kept
        with fenced(mirror.config.state_file, ctx.fence.epoch, "salvage-snapshot", site):
            taken = mirror.salvage_snapshot(site, ctx.operation.id)
            pruned = mirror.prune_salvage(site, keep, ctx.operation.id)
        if pruned:
            self.said(
                step,
                f"volume {step.target}: removed {len(pruned)} older salvage snapshot(s) of "
                f"{site} (policy.salvage_snapshots_kept: {keep}): "
                + ", ".join(p.name for p in pruned),
                ctx,
            )
        if taken is None:
            self.said(
                step,
                f"volume {step.target}: {site} has no live copy, so it holds nothing outside "
                "the mirror's snapshots",
                ctx,
            )
        else:
            self.said(step, f"volume {step.target}: {site}'s copy snapshotted at {taken}", ctx)

    def verify(self, step: Step, ctx: StepContext) -> None:
        mirror = _btrfs(ctx, step.target)
        site = step.site or ""
        if btrfs.is_subvolume(mirror.live_path(site)) and not btrfs.is_subvolume(
            mirror.salvage_path(site, ctx.operation.id)
        ):
            raise Unavailable(f"volume {step.target}: {site}'s snapshot is not there yet")


class MailHandler(Summaries):
    """salvage/mail/<volume>: each divergent message copied into the same Maildir of the
    active site's live copy, as new mail."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False  # the listing is the work: apply lists and copies what is missing

    def apply(self, step: Step, ctx: StepContext) -> None:
        old_site, active = step.params["old_site"], ctx.plan.from_site
        copies = _listed(
            ctx,
            f"volume {step.target}",
            lambda: mail_divergence(ctx, step.target, old_site),
        )
        if copies is None:
            self.said(step, f"volume {step.target}: not listed, nothing copied", ctx)
            return
        delivered, present, failed = [], [], []
        for item in copies.divergent:
            ctx.fence.ensure()
            assert copies.snapshot is not None  # divergent only when there is a snapshot
            try:
                if maildir.deliver(item, copies.snapshot, copies.active):
                    delivered.append(item.identity)
                else:
                    present.append(item.identity)
            except (Unavailable, Failed) as exc:  # left for salvage/decide to judge
                failed.append(f"{item.identity}: {exc}")
        ctx.figures[report.mail_copied(step.target)] = len(delivered)
        ctx.figures[f"salvage/mail/{step.target}/ids"] = " ".join(delivered)
        audit_event(
            ctx, "salvage.mail", step, old_site=old_site, copied=delivered, present=present,
            not_copied=failed,
        )  # fmt: skip
        if not copies.divergent:
            sentence = f"volume {step.target}: {old_site} holds no message {active} lacks"
        else:
            sentence = (
                f"volume {step.target}: copied {len(delivered)} message(s) only {old_site} held "
                f"into {active}: {shown(delivered) or 'none'}"
            )
            if present:
                sentence += f"; {len(present)} already there under their file names"
            if failed:
                sentence += f"; {len(failed)} could not be copied: {shown(failed)}"
        self.said(step, sentence, ctx)

    def verify(self, step: Step, ctx: StepContext) -> None:
        """Nothing to wait for: each copy was renamed into place before apply returned.
        What could not be copied is judged by salvage/decide, which lists again."""


# -- objects --------------------------------------------------------------------------


def object_divergence(
    ctx: StepContext, bucket: str, old_site: str
) -> tuple[Any, Any, list[ObjectCopy]]:
    old = s3_client(ctx.topology, endpoint_of(ctx, old_site))
    active = s3_client(ctx.topology, endpoint_of(ctx, ctx.plan.from_site))
    return (
        old,
        active,
        divergent_objects(objects.listing(old, bucket), objects.listing(active, bucket)),
    )


class ObjectsHandler(Summaries):
    """salvage/objects/<bucket>: each object only the old site holds copied to the active
    site; one the active site holds differently copied beside it (never overwritten)."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        old_site, bucket, active_site = step.params["old_site"], step.target, ctx.plan.from_site
        listed = _listed(ctx, f"bucket {bucket}", lambda: object_divergence(ctx, bucket, old_site))
        if listed is None:
            self.said(step, f"bucket {bucket}: not listed, nothing copied", ctx)
            return
        old, active, copies = listed
        fence = hold_fence(active, bucket, ctx.fence.epoch) if copies else None
        copied, raced, failed = [], [], []
        for item in copies:
            try:
                if objects.copy(old, active, bucket, item, fence):
                    copied.append(item)
                else:
                    raced.append(item.key)
            except (Unavailable, Failed) as exc:  # left for salvage/decide to judge
                failed.append(f"{item.key}: {exc}")
        conflicts = [f"{c.key} → {c.target_key}" for c in copied if c.kind == "conflict"]
        keys = [c.target_key for c in copied]
        ctx.figures[report.objects_copied(bucket)] = len(copied)
        ctx.figures[f"salvage/objects/{bucket}/keys"] = " ".join(keys)
        audit_event(
            ctx, "salvage.objects", step, old_site=old_site, copied=keys, conflicts=conflicts,
            changed_meanwhile=raced, not_copied=failed,
        )  # fmt: skip
        if not copies:
            sentence = f"bucket {bucket}: {old_site} holds no object {active_site} lacks"
        else:
            sentence = (
                f"bucket {bucket}: copied {len(copied)} object(s) only {old_site} held into "
                f"{active_site}: {shown(keys) or 'none'}"
            )
            if conflicts:
                sentence += (
                    f"; {len(conflicts)} key(s) {active_site} holds differently kept "
                    f"beside them: {shown(conflicts)}"
                )
            if raced:
                sentence += f"; {len(raced)} changed meanwhile: {shown(raced)}"
            if failed:
                sentence += f"; {len(failed)} could not be copied: {shown(failed)}"
        self.said(step, sentence, ctx)

    def verify(self, step: Step, ctx: StepContext) -> None:
        """As for mail: salvage/decide lists again and judges what is left."""


# -- the decision -----------------------------------------------------------------------


class SalvageRefused(Failed):
    """Something only the old site holds was not salvaged and nobody said to discard it."""


def residual(ctx: StepContext, step: Step) -> Residual:
    """What is still divergent, listed again from both sides; a copy that cannot be
    listed counts as not inspected when the operator gave a reason to discard (else the
    error stands, and is retried)."""
    old_site = step.params["old_site"]
    mail: list[str] = []
    found: list[str] = []
    unlisted = list(step.params["uninspected"])
    for name in step.params["volumes"]:
        copies = _listed(ctx, f"volume {name}", lambda n=name: mail_divergence(ctx, n, old_site))
        if copies is None:
            unlisted.append(f"volume {name}: {old_site}'s copy could not be listed")
            continue
        mail += [f"{name}: {item.path} ({item.identity})" for item in copies.divergent]
    for bucket in step.params["buckets"]:
        listed = _listed(
            ctx, f"bucket {bucket}", lambda b=bucket: object_divergence(ctx, b, old_site)
        )
        if listed is None:
            unlisted.append(f"bucket {bucket}: {old_site}'s bucket could not be listed")
            continue
        found += [f"{bucket}/{item.key}" for item in listed[2]]
    return Residual(tuple(mail), tuple(found), tuple(unlisted))


class DecideHandler(Summaries):
    """salvage/decide: the reprotect goes on only when nothing divergent is left, or the
    operator gave --discard-divergent with a reason (audited, warned about)."""

    def check(self, step: Step, ctx: StepContext) -> bool:
        return False

    def apply(self, step: Step, ctx: StepContext) -> None:
        pass

    def verify(self, step: Step, ctx: StepContext) -> None:
        left = residual(ctx, step)
        decision = decide(left, step.params["old_site"], ctx.operation.discard_divergent)
        ctx.figures["salvage/unsalvaged"] = (
            len(left.mail) + len(left.objects) + len(left.uninspected)
        )
        if not decision.proceed:
            audit_event(ctx, "salvage.refused", step, left=left.describe())
            raise SalvageRefused(decision.sentence)
        if decision.discarded:
            ctx.log(f"WARNING: {decision.sentence}")
            audit_event(
                ctx, "salvage.discarded", step, reason=ctx.operation.discard_divergent,
                mail=list(left.mail), objects=list(left.objects),
                uninspected=list(left.uninspected),
            )  # fmt: skip
        self.said(step, decision.sentence, ctx)
