"""`evaluate(topo, to_site)`: could a move to `to_site` run right now? Changes nothing.

The checks run side by side (the Ansible probe and the syntax check take seconds each,
the others fractions of one); each hands back findings, and `on_progress` hears each
check's as it ends. What to check comes from the plans of both moves to `to_site` from
the active site recorded in `topo` (a switchover, and the failover an automatic
promotion would run, which also promotes DNS servers): their target-site steps' hosts,
the playbooks their steps call, the zones they repoint, the volumes they mount.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed

from orchestrator.config.model import Topology
from orchestrator.evaluate.dns import check_zones
from orchestrator.evaluate.findings import Evaluation, Finding, evaluation, problem
from orchestrator.evaluate.hosts import check_hosts
from orchestrator.evaluate.playbooks import check_playbooks, playbooks_used
from orchestrator.evaluate.readiness import check_readiness
from orchestrator.evaluate.volumes import check_volumes
from orchestrator.evaluate.zookeeper import check_zookeeper
from orchestrator.plan import PlanRefused, assumed_state, build_plan
from orchestrator.plan.model import Mode

log = logging.getLogger(__name__)

# on_progress(check, findings): one check ended with these findings.
Progress = Callable[[str, Sequence[Finding]], None]


def evaluate(
    topo: Topology,
    to_site: str,
    *,
    modes: tuple[Mode, ...] = ("switchover", "failover"),
    on_progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> Evaluation:
    started = time.monotonic()
    try:
        plans = [build_plan(topo, assumed_state(topo), mode, to_site) for mode in modes]
    except PlanRefused as exc:
        refused = [problem("plan", to_site, f"a move to {to_site} cannot be planned: {exc}")]
        return evaluation(to_site, refused, clock(), time.monotonic() - started)
    playbooks = list(dict.fromkeys(p for plan in plans for p in playbooks_used(topo, plan)))
    checks: dict[str, Callable[[], list[Finding]]] = {
        "hosts": lambda: check_hosts(topo, plans),
        "playbooks": lambda: check_playbooks(playbooks),
        "tsig keys": lambda: check_zones(topo),
        "volumes": lambda: check_volumes(topo, to_site),
        "zookeeper": lambda: check_zookeeper(topo),
        "readiness": lambda: check_readiness(topo, to_site),
    }
    findings: list[Finding] = []
    with ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="evaluate") as pool:
        futures = {pool.submit(run): name for name, run in checks.items()}
        for future in as_completed(futures):
            name = futures[future]
            try:
                found = future.result()
            except Exception as exc:  # a check's own bug is a finding, not a crash
                log.exception("evaluation check %s failed", name)
                found = [problem(name, to_site, f"the check itself failed: {exc}")]
            findings += found
            if on_progress is not None:
                on_progress(name, found)
    result = evaluation(to_site, findings, clock(), time.monotonic() - started)
    log.info("%s", result.describe())
    return result
