"""The agent's decision: its memory and the clock in, one verdict and one sentence out.

Pure, and table-tested by its sentences, which are also its log lines. The rules, in
order:
1. already fenced since the last feed as the holder: stay fenced (nothing undoes a fence
   but the engine starting the application again);
2. told that the site lost the ticket to a failover: fence now (fence on return);
3. never fed as the holder (a standby, a site that handed the ticket over, a fresh
   install): idle;
4. fed as the holder within `fence_after`: the site may serve;
5. otherwise: fence now.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Verdict(StrEnum):
    IDLE = "idle"
    SERVE = "serve"
    FENCE = "fence"
    FENCED = "fenced"


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

    def fed(
        self, *, holder: bool, seq: int, fence_after: float, now: float, lost: bool = False
    ) -> Memory:
        if seq <= self.seq:
            return self
        return replace(
            self,
            armed=holder,
            fed_at=now,
            fence_after=fence_after,
            seq=seq,
            fenced=self.fenced and not holder,
            lost=lost,
        )


def judge(memory: Memory, now: float) -> tuple[Verdict, str]:
    site = memory.site
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
