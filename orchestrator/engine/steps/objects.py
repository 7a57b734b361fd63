"""Reversing the object store's replication in a reprotect (boto3 to each endpoint)."""

from __future__ import annotations

from orchestrator.adapters.s3 import (
    FenceHold,
    copy_missing,
    hold_fence,
    keys_with_etags,
    replicate,
    replication_destination,
    s3_client,
    stop_replicating,
)
from orchestrator.config.model import S3Endpoint
from orchestrator.engine.handlers import StepContext
from orchestrator.errors import Failed, Unavailable
from orchestrator.plan.model import Step


def endpoint_of(ctx: StepContext, site: str) -> S3Endpoint:
    """The object-store endpoint of `site`; Failed when the topology has none there."""
    store = ctx.topology.object_store
    endpoint = next((e for e in store.endpoints if e.site == site), None) if store else None
    if endpoint is None:
        raise Failed(f"no object-store endpoint in {site}")
    return endpoint


class ObjectStoreReverseHandler:
    """The active site's bucket replicates to the standby's, the standby's to nobody, and
    the standby holds every object the active site holds."""

    def _state(self, step: Step, ctx: StepContext) -> tuple[str | None, str | None]:
        active, standby = step.site or "", step.params["destination"]
        source = s3_client(ctx.topology, endpoint_of(ctx, active))
        target = s3_client(ctx.topology, endpoint_of(ctx, standby))
        return (
            replication_destination(source, step.target),
            replication_destination(target, step.target),
        )

    def _in_sync(self, step: Step, ctx: StepContext) -> bool:
        active = s3_client(ctx.topology, endpoint_of(ctx, step.site or ""))
        standby = s3_client(ctx.topology, endpoint_of(ctx, step.params["destination"]))
        wanted = keys_with_etags(active, step.target)
        present = keys_with_etags(standby, step.target)
        return all(present.get(key) == etag for key, etag in wanted.items())

    def check(self, step: Step, ctx: StepContext) -> bool:
        outbound, inbound = self._state(step, ctx)
        return outbound is not None and inbound is None and self._in_sync(step, ctx)

    def apply(self, step: Step, ctx: StepContext) -> None:
        store = ctx.topology.object_store
        assert store is not None  # the plan has this step only with an object store
        active, standby = step.site or "", step.params["destination"]
        source = s3_client(ctx.topology, endpoint_of(ctx, active))
        target = s3_client(ctx.topology, endpoint_of(ctx, standby))
        # Both stores first refuse a leader older than one that already wrote here, and
        # each write below first checks that no newer one has claimed them since.
        fences: dict[str, FenceHold] = {}
        for site, client in ((active, source), (standby, target)):
            fences[site] = hold_fence(client, step.target, ctx.fence.epoch)
            before = fences[site].before
            if before != ctx.fence.epoch:
                ctx.log(
                    f"bucket {step.target}@{site}: fence moved from "
                    f"{'no fence' if before is None else f'epoch {before}'} to epoch "
                    f"{ctx.fence.epoch}"
                )
        # Stop the old direction first: for a moment nothing replicates, rather than
        # both sites replicating into each other.
        stop_replicating(target, step.target, fence=fences[standby])
        replicate(
            source,
            step.target,
            store.replication_role,
            step.target,
            rule_id=f"sitectl-{active}-to-{standby}",
            fence=fences[active],
        )
        # What the new site took in before this rule existed is never replicated by it.
        outcome = copy_missing(source, target, step.target, fence=fences[standby])
        ctx.log(
            f"bucket {step.target}: copied {len(outcome.copied)} object(s) {active} → {standby}"
        )
        if outcome.kept:
            ctx.log(
                f"bucket {step.target}: left {len(outcome.kept)} object(s) at {standby} "
                f"as written there after the listing: {', '.join(outcome.kept[:5])}"
            )

    def verify(self, step: Step, ctx: StepContext) -> None:
        if not self.check(step, ctx):
            raise Unavailable(f"bucket {step.target}: replication not yet reversed or in sync")
