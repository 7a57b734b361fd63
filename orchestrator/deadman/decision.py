"""The agent's decision: its memory and the clock in, one verdict and one sentence out.

Pure, and table-tested by its sentences, which are also its log lines. The rules, in
order:
1. the operator's override (the lone survivor's `ticket grant --force --no-quorum`):
   restore the site once, then never fence it on silence until the cluster decides
   again (a feed as the holder ends the override; a feed saying the site lost the ticket
   to a failover ends it and fences);
2. already fenced since the last feed as the holder: stay fenced (nothing undoes a fence
   but the engine starting the application again, or an override);
3. told that the site lost the ticket to a failover: fence now (fence on return);
4. never fed as the holder (a standby, a site that handed the ticket over, a fresh
   install): idle;
5. fed as the holder within `fence_after`: the site may serve;
6. otherwise: fence now.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Verdict(StrEnum):
    IDLE = "idle"
    SERVE = "serve"
    FENCE = "fence"
    FENCED = "fenced"
    RESTORE = "restore"
    OVERRIDDEN = "overridden"


@dataclass(frozen=True)
class Memory:
    """What the agent knows, on its own monotonic clock."""

    site: str
    armed: bool = False  # the last feed said the site holds the right to serve
    fed_at: float | None = None  # when that feed arrived
    fence_after: float = 0.0
    seq: int = 0  # the last feed's, so a replayed datagram feeds nothing
    fenced: bool = False  # fenced since the last feed as the holder
    lost: bool = False  # the last feed said the site lost the ticket to a failover
    override: str | None = None  # the operator's reason to serve without the ticket
    restored: bool = False  # the override's restore actions ran

    def fed(
        self,
        *,
        holder: bool,
        seq: int,
        fence_after: float,
        now: float,
        lost: bool = False,
        override: str | None = None,
    ) -> Memory:
        if seq <= self.seq:
            return self
        if override is not None:
            # A new override restores again: the site may have been fenced since.
            keep, restored = override, False
        elif self.override is not None and not (holder or lost):
            # The cluster has not decided yet (no quorum, or it does not vouch for the
            # site): the operator's word stands.
            keep, restored = self.override, self.restored
        else:
            keep, restored = None, False
        return replace(
            self,
            armed=holder or override is not None,
            fed_at=now,
            fence_after=fence_after,
            seq=seq,
            fenced=self.fenced and not holder and override is None,
            lost=lost,
            override=keep,
            restored=restored,
        )


def judge(memory: Memory, now: float) -> tuple[Verdict, str]:
    site = memory.site
    if memory.override is not None:
        if not memory.restored:
            return Verdict.RESTORE, (
                f"{site} serves by the operator's override ({memory.override}): restoring {site}"
            )
        return Verdict.OVERRIDDEN, (
            f"{site} serves by the operator's override ({memory.override}) without the "
            "cluster's ticket: not fencing it"
        )
    if memory.fenced:
        return Verdict.FENCED, f"{site} is fenced: waiting for its controller"
    if memory.lost:
        return Verdict.FENCE, f"{site} lost the site ticket to a failover: fencing {site}"
    if not memory.armed or memory.fed_at is None:
        return Verdict.IDLE, f"{site} does not hold the right to serve: nothing to guard"
    silent = max(0.0, now - memory.fed_at)
    if silent <= memory.fence_after:
        return Verdict.SERVE, f"{site} was confirmed {silent:.1f} s ago: it may serve"
    return (
        Verdict.FENCE,
        f"{site}'s controller has not confirmed the site for {silent:.1f} s "
        f"(fence after {memory.fence_after:g} s): fencing {site}",
    )
