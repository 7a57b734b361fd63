"""Operation records and step checkpoints in ZooKeeper.

Reads need no lease; every write goes through the Lease, so it is fenced by the epoch
and, where a version is given, a compare-and-set on the record itself.
"""

from __future__ import annotations

import contextlib

from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.recipe.lock import Lock

from orchestrator.coordination.client import translated
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.paths import ZkPaths, decode_step_id, encode_step_id
from orchestrator.coordination.ticket import Ticket
from orchestrator.coordination.ticketstore import TicketStore
from orchestrator.errors import Failed
from orchestrator.records import ApprovalRequest, Decision, OperationRecord, StepRecord


class ZkStore:
    def __init__(self, client: KazooClient, paths: ZkPaths) -> None:
        self._client = client
        self.paths = paths

    # Reads

    def active_site(self) -> str | None:
        return self._read_text(self.paths.active_site)

    def current_operation(self) -> str | None:
        return self._read_text(self.paths.current) or None

    def paused(self) -> str | None:
        """The reason automation is paused, or None when it is not."""
        return self._read_text(self.paths.paused)

    def ticket(self) -> Ticket | None:
        """The site ticket, None when none is recorded yet."""
        found = TicketStore(self._client, self.paths).read()
        return found[0] if found else None

    def operation(self, op_id: str) -> tuple[OperationRecord, int]:
        with translated(f"reading operation {op_id}"):
            try:
                raw, stat = self._client.get(self.paths.operation(op_id))
            except NoNodeError:
                raise KeyError(op_id) from None
        return OperationRecord.from_json(raw), stat.version

    def operation_ids(self) -> list[str]:
        """Operation ids, oldest first (ids start with a sortable UTC timestamp)."""
        with translated("listing operations"):
            try:
                return sorted(self._client.get_children(self.paths.operations))
            except NoNodeError:
                return []

    def steps(self, op_id: str) -> dict[str, tuple[StepRecord, int]]:
        with translated(f"reading the checkpoints of {op_id}"):
            try:
                nodes = self._client.get_children(self.paths.steps(op_id))
            except NoNodeError:
                return {}
            found = {}
            for node in nodes:
                raw, stat = self._client.get(f"{self.paths.steps(op_id)}/{node}")
                found[decode_step_id(node)] = (StepRecord.from_json(raw), stat.version)
        return found

    def records(self, op_id: str) -> dict[str, StepRecord]:
        """The operation's checkpoints by step id, without their versions."""
        return {step_id: record for step_id, (record, _) in self.steps(op_id).items()}

    def _read_text(self, path: str) -> str | None:
        with translated(f"reading {path}"):
            try:
                raw, _ = self._client.get(path)
            except NoNodeError:
                return None
        try:
            return raw.decode()
        except UnicodeDecodeError:
            raise Failed(f"{path} holds bytes that are not text: not written by sitectl") from None

    # Fenced writes

    def start_operation(self, lease: Lease, op: OperationRecord) -> int:
        with translated("preparing the operation record"):
            self._client.ensure_path(self.paths.operations)
        lease.create(self.paths.operation(op.id), op.to_json())
        lease.create(self.paths.steps(op.id), b"")
        self.set_current(lease, op.id)
        return 0

    def update_operation(self, lease: Lease, op: OperationRecord, version: int) -> int:
        return lease.set(self.paths.operation(op.id), op.to_json(), version)

    def write_step(self, lease: Lease, op_id: str, record: StepRecord, version: int | None) -> int:
        path = self.paths.step(op_id, record.step_id)
        if version is None:
            lease.create(path, record.to_json())
            return 0
        return lease.set(path, record.to_json(), version)

    def set_current(self, lease: Lease, op_id: str) -> None:
        self._upsert(lease, self.paths.current, op_id.encode())

    def clear_current(self, lease: Lease) -> None:
        self._upsert(lease, self.paths.current, b"")

    def set_active_site(self, lease: Lease, site: str) -> None:
        self._upsert(lease, self.paths.active_site, site.encode())

    def _upsert(self, lease: Lease, path: str, data: bytes) -> None:
        with translated(f"reading {path}"):
            exists = self._client.exists(path)
        if exists is None:
            lease.create(path, data)
        else:
            lease.set(path, data, exists.version)

    # Unfenced: an operator may ask any running operation to stop, lease or not.

    def request_abort(self, op_id: str, who: str, *, now: bool = False) -> None:
        """Ask the operation to stop at its next safe point; `now`: also stop the step
        under way at once (its playbook killed, the step left half-done)."""
        with translated(f"requesting abort of {op_id}"), contextlib.suppress(NodeExistsError):
            self._client.create(f"{self.paths.operation(op_id)}/abort", who.encode())
        if now:
            with translated(f"requesting abort of {op_id}"), contextlib.suppress(NodeExistsError):
                self._client.create(f"{self.paths.operation(op_id)}/abort-now", who.encode())

    def abort_requested(self, op_id: str) -> str | None:
        return self._read_text(f"{self.paths.operation(op_id)}/abort")

    def abort_now(self, op_id: str) -> str | None:
        """Who asked to stop the step under way at once, if anyone did."""
        return self._read_text(f"{self.paths.operation(op_id)}/abort-now")

    # Approvals: the engine asks (fenced), a person answers (unfenced, like an abort: the
    # answer is for whoever runs the operation, which may be another process).

    def _approval(self, op_id: str, step_id: str) -> str:
        return f"{self.paths.operation(op_id)}/approvals/{encode_step_id(step_id)}"

    def _decision(self, op_id: str, step_id: str) -> str:
        return f"{self.paths.operation(op_id)}/decisions/{encode_step_id(step_id)}"

    def request_approval(self, lease: Lease, op_id: str, request: ApprovalRequest) -> None:
        with translated(f"asking for approval of {request.step_id}"):
            self._client.ensure_path(f"{self.paths.operation(op_id)}/approvals")
        self._upsert(lease, self._approval(op_id, request.step_id), request.to_json())

    def approval_requests(self, op_id: str) -> list[ApprovalRequest]:
        """The approvals the operation asked for (answered or not), oldest first."""
        base = f"{self.paths.operation(op_id)}/approvals"
        with translated(f"reading the approvals of {op_id}"):
            try:
                nodes = self._client.get_children(base)
            except NoNodeError:
                return []
            found = [ApprovalRequest.from_json(self._client.get(f"{base}/{n}")[0]) for n in nodes]
        return sorted(found, key=lambda r: r.since)

    def decide(self, op_id: str, step_id: str, decision: Decision) -> Decision:
        """Record a person's answer; the first answer stands: the one already recorded
        is returned when there is one."""
        path = self._decision(op_id, step_id)
        with translated(f"answering {step_id} of {op_id}"):
            self._client.ensure_path(f"{self.paths.operation(op_id)}/decisions")
            try:
                self._client.create(path, decision.to_json())
            except NodeExistsError:
                raw, _ = self._client.get(path)
                return Decision.from_json(raw)
        return decision

    def decision(self, op_id: str, step_id: str) -> Decision | None:
        with translated(f"reading the answer to {step_id}"):
            try:
                raw, _ = self._client.get(self._decision(op_id, step_id))
            except NoNodeError:
                return None
        return Decision.from_json(raw)

    def clear_decision(self, lease: Lease, op_id: str, step_id: str) -> None:
        """Forget an answer, so the step asks again (a resume after a reject)."""
        path = self._decision(op_id, step_id)
        with translated(f"reading {path}"):
            exists = self._client.exists(path)
        if exists is not None:
            lease.delete(path, exists.version)

    def lock_holders(self) -> list[str]:
        """Who holds (first) or waits for the operation lease."""
        with translated("reading the lease holders"):
            try:
                return list(Lock(self._client, self.paths.lock).contenders())
            except NoNodeError:
                return []
