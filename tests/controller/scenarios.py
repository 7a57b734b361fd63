"""Helpers the controller scenarios share with the partition-safety scenarios
(tests/engine/test_partition_safety.py): no tests, no marks, so any test directory may
import them."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orchestrator.audit import AuditLog
from orchestrator.config import load_topology
from orchestrator.controller.canary import canary_interval, intervals
from orchestrator.lab import controllers as lab_daemons
from orchestrator.lab import layout
from tests.controller.conftest import Controllers, wait_for
from tests.engine.conftest import Cluster


def controller_topology(cluster: Cluster, name: str, **rpo_limits: str) -> Path:
    """The lab's topology with automatic promotion on, beside it (its relative paths
    to keys and state stay valid)."""
    doc = yaml.safe_load(cluster.topology_file.read_text())
    doc["policy"]["automatic_promotion"] = True
    doc["policy"]["rpo_limits"].update(rpo_limits)
    path = cluster.topology_file.with_name(f"topology-{name}.yaml")
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    load_topology(path)  # the copy must still be valid
    return path


def canaries_settled(controllers: Controllers | LabControllers) -> None:
    """Wait until the leader has written every kind of canary and they have had a tick
    to reach dc2: once dc1 is lost the readiness gate bounds the loss by the newest
    canary dc2 holds, and a loss a moment after an election races the new leader's first
    canaries (the newest dc2 holds, from an earlier scenario or the lab's start, may be
    older than the RPO limit)."""
    # Controllers just started serve /status before one of them has won the election.
    leader = wait_for(
        lambda: next(iter(controllers.leaders()), None), "a controller leads", within=60
    )
    topo = load_topology(controllers.topology)
    tick = canary_interval(topo)
    settle = max(intervals(topo).values()) + tick
    since = time.time()

    def settled() -> bool:
        status = controllers.status(leader)
        return (
            time.time() - since > settle
            and (status.get("canary_at") or 0) > since + settle - tick
            and not status.get("canary_problems")
        )

    wait_for(settled, f"{leader}'s canaries written and replicated", within=settle + 60)


@dataclass(frozen=True)
class LabControllers:
    """The controllers `sitectl lab controllers up --topology FILE` runs, seen from ops."""

    topology: Path
    lab_root: Path  # the lab's state dir: its controllers' bearer token

    def status(self, site: str) -> dict[str, Any]:
        token = lab_daemons.token_file(self.lab_root)
        return lab_daemons.status(lab_daemons.listen(site), token)

    def leaders(self) -> list[str]:
        found = []
        for site in layout.SITES:
            with contextlib.suppress(OSError):
                if self.status(site).get("leader"):
                    found.append(site)
        return found


def automatic_failover_succeeded(cluster: Cluster) -> None:
    wait_for(
        lambda: (
            (op := cluster.status()["operation"])
            and op["automatic"]
            and op["status"] == "succeeded"
            and op["to_site"] == "dc2"
        ),
        "an automatic failover to dc2 succeeded",
        within=180,
    )


def automatic_operations(cluster: Cluster) -> list[dict]:
    audit = AuditLog(cluster.lab.state_dir / "sitectl" / "audit.jsonl").read()
    return [e for e in audit if e["event"] == "operation.started" and e.get("automatic")]
