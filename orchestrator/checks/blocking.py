"""Which health results must stop an operation's pre-flight (pure).

Only `down` blocks; `degraded` is the operator's call. What blocks:
- anything down on the new site (`to_site`): the service is moving there;
- anything cluster-wide that is down (the ZooKeeper quorum: no lease, no fencing);
- the DNS update servers of a zone, wherever they are, since no record could be
  repointed, except on the old site in a failover (promoting a secondary there is
  part of the failover itself);
- in a switchover, anything down on the old site: a planned move stops the old site
  cleanly and syncs it one last time, which needs it reachable.
In a failover nothing on the old site blocks: its loss is the reason for the failover.
A split brain (two sites serving) never blocks: moving the service is how it ends.
"""

from __future__ import annotations

from orchestrator.checks.dns import UPDATE_PREFIX
from orchestrator.checks.result import CheckResult, Status, Sweep

MODES = ("switchover", "failover")


def blocking_problems(
    sweep: Sweep, system: str, *, from_site: str, to_site: str, mode: str
) -> list[str]:
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: use switchover or failover")
    return [
        sentence(r, why)
        for r in sweep.for_system(system)
        if r.status is Status.DOWN
        and (why := _why_blocking(r, from_site, to_site, mode)) is not None
    ]


def _why_blocking(result: CheckResult, from_site: str, to_site: str, mode: str) -> str | None:
    if result.split_brain:
        return None
    if result.site == to_site:
        return f"the new site {to_site} needs it"
    if result.site is None:
        return "the whole cluster depends on it"
    if result.site == from_site:
        if mode != "switchover":
            return None
        return f"a switchover needs the old site reachable — use `sitectl failover --to {to_site}`"
    if result.system == "dns" and result.target.startswith(UPDATE_PREFIX):
        return "no DNS record could be repointed"
    return None


def sentence(result: CheckResult, why: str) -> str:
    where = f" in {result.site}" if result.site else ""
    reason = result.reason or "down"
    return f"{result.system} {result.target}{where} is down ({reason}): {why}."
