"""One command's ZooKeeper session and what reading it tells (`sitectl status`), apart from
the engine's front door (orchestrator/engine/operation.py, which re-exports all of this).

Reading needs kazoo and the records, not the executor, the step handlers and the
libraries behind them (ansible-runner, boto3, ldap3): `sitectl status` and `sitectl
ticket` (engine/tickets.py) import this module, not the engine.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from kazoo.client import KazooClient

from orchestrator.audit import AuditLog, beside
from orchestrator.config.model import Topology
from orchestrator.coordination.client import connect
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.engine.records import OperationRecord
from orchestrator.engine.views import OperationView, StatusView
from orchestrator.errors import SitectlError


class OperationPending(SitectlError):
    """An earlier operation has not finished: resume or abort it before starting another."""

    def __init__(self, op: OperationRecord) -> None:
        super().__init__(
            f"operation {op.id} ({op.mode} {op.from_site}→{op.to_site}) is {op.status.value}: "
            f"`sitectl resume {op.id}` to finish it or `sitectl abort {op.id}` to give it up"
        )
        self.op = op


@dataclass
class Session:
    topology: Topology
    client: KazooClient
    store: ZkStore

    @property
    def paths(self) -> ZkPaths:
        return self.store.paths

    @property
    def local_state(self) -> Path:
        return self.topology.resolve(self.topology.local_state)

    def audit(self) -> AuditLog:
        return audit_log(self.topology)


def audit_log(topo: Topology) -> AuditLog:
    """The audit log of this machine's sitectl: `SITECTL_AUDIT_LOG`, else beside the
    local state; also written where no ZooKeeper session exists."""
    return beside(topo.resolve(topo.local_state))


@contextmanager
def connected(topo: Topology) -> Iterator[Session]:
    """A session that only reads: `engine.session` is this plus the registration that
    pre-flight's ZooKeeper check reports (which imports every check)."""
    client = connect(topo)
    try:
        paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
        yield Session(topo, client, ZkStore(client, paths))
    finally:
        client.stop()
        client.close()


def release_quietly(lease: Lease) -> None:
    with contextlib.suppress(SitectlError):  # a lost session already released it
        lease.release()


def describe(s: Session) -> StatusView:
    """What `sitectl status` shows."""
    current = s.store.current_operation()
    if current:
        op_id = current
    else:
        ids = s.store.operation_ids()
        op_id = ids[-1] if ids else ""
    recorded = s.store.active_site()
    operation = None
    if op_id:
        op, _ = s.store.operation(op_id)
        records = s.store.records(op.id)
        operation = OperationView.of(
            op,
            records,
            in_progress=current is not None,
            asked=s.store.approval_requests(op.id),
        )
    return StatusView(
        cluster=s.topology.cluster,
        active_site=recorded or s.topology.active_site,
        active_site_recorded=recorded is not None,
        lock_holders=tuple(s.store.lock_holders()),
        paused=s.store.paused(),
        operation=operation,
        ticket=s.store.ticket(),
    )
