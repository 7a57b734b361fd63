"""Starting, resuming, aborting and describing operations: the engine's front door.

The CLI and the controller call these; they own the ZooKeeper session for one command,
take the lease, record the operation, run the executor and always give the lease back.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from orchestrator.audit import identity, os_user
from orchestrator.checks.zookeeper import reporting_client
from orchestrator.config.model import Topology
from orchestrator.coordination.lease import Lease
from orchestrator.coordination.ticketstore import LeasedTickets, TicketStore
from orchestrator.engine.executor import Events, Executor, NoEvents
from orchestrator.engine.faults import Faults
from orchestrator.engine.observe import observe
from orchestrator.engine.progress import abort_advice, plan_digest, where_is_the_service
from orchestrator.engine.records import FINISHED_OP, Mode, OperationRecord, OpStatus, StepRecord

# The CLI, the drill, the controller and the tests reach these as engine.Session etc.
from orchestrator.engine.session import OperationPending as OperationPending
from orchestrator.engine.session import Session as Session
from orchestrator.engine.session import audit_log as audit_log
from orchestrator.engine.session import connected
from orchestrator.engine.session import describe as describe
from orchestrator.engine.session import release_quietly as release_quietly
from orchestrator.engine.steps import default_handlers
from orchestrator.engine.views import OutcomeView
from orchestrator.errors import ConfigError, SitectlError
from orchestrator.notify.dispatch import Notifier, OperationNotices
from orchestrator.notify.payload import closing_event
from orchestrator.plan import MirrorView, ObservedState, Plan, build_plan, build_reprotect_plan
from orchestrator.plan.model import Trigger
from orchestrator.safefiles import private_dir

UNFINISHED = frozenset({OpStatus.RUNNING, OpStatus.FAILED, OpStatus.INTERRUPTED})
# How long `sitectl abort` waits for a running operation to reach its safe point: a step
# under way finishes first (a playbook step may take a minute), and how often it looks.
ABORT_WAIT_S = 60.0
ABORT_POLL_S = 0.5


class ResumeRefused(ConfigError):
    pass


@contextmanager
def session(topo: Topology) -> Iterator[Session]:
    # Pre-flight's ZooKeeper check reports this session ("we hold a session").
    with connected(topo) as s, reporting_client(s.client):
        yield s


@dataclass
class Outcome:
    op: OperationRecord
    plan: Plan
    steps: dict[str, StepRecord] = field(default_factory=dict)
    figures: dict[str, object] = field(default_factory=dict)

    @property
    def gate_refused(self) -> bool:
        """Refused by the readiness gate or a pre-flight check: nothing changed (exit 4)."""
        return self.op.status is OpStatus.REFUSED

    def view(self) -> OutcomeView:
        return OutcomeView.of(self.op, (s.id for s in self.plan.steps()), self.steps, self.figures)


ARTIFACTS = "artifacts"  # under local_state: one directory per operation
OPERATION_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{4}")


def new_operation_id(now: float) -> str:
    # Sortable by time, unique without coordination.
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(2)


def plan_operation(
    s: Session, mode: Mode, to_site: str | None, trigger: Trigger = "manual"
) -> Plan:
    """The plan as things stand now (read-only; for --dry-run and before starting)."""
    observed = observe(s.topology, s.store)
    if mode is Mode.REPROTECT:
        return build_reprotect_plan(s.topology, observed, trigger)
    return build_plan(s.topology, observed, mode, to_site or "", trigger)


def _refuse_if_pending(s: Session) -> None:
    current = s.store.current_operation()
    if current:
        op, _ = s.store.operation(current)
        if op.status in UNFINISHED:
            raise OperationPending(op)


def start_operation(
    s: Session,
    plan: Plan,
    *,
    reason: str,
    accept_data_loss: str | None = None,
    no_fence_wait: str | None = None,
    discard_divergent: str | None = None,
    automatic: bool = False,
    escalated_from: str | None = None,
    drill: str | None = None,
    events: Events | None = None,
    faults: Faults | None = None,
    asked: Asker | None = None,
    on_recorded: Callable[[OperationRecord], None] | None = None,
) -> Outcome:
    """Take the lease, record the operation and run it. `asked`: the operator a
    controller runs it for (else this process's user and host); `on_recorded` is told
    once the record exists, before its first step."""
    if (plan.trigger == "drill") != (drill is not None):
        # The record's drill id is what a resume plans by again (its trigger).
        raise ValueError("a drill's plan and only it is started with the drill's id")
    _refuse_if_pending(s)
    # A log or an artifact directory that cannot be written safely (a link planted in
    # its place) refuses the operation here, before anything is recorded or changed.
    s.audit().check()
    private_dir(s.local_state / ARTIFACTS, root=s.local_state)
    lease = Lease(s.client, s.paths, identity())
    lease.acquire()
    try:
        _refuse_if_pending(s)  # someone may have started between our look and our lease
        now = time.time()
        op = OperationRecord(
            id=new_operation_id(now),
            mode=plan.mode,
            from_site=plan.from_site,
            to_site=plan.to_site,
            started=now,
            by=asked.by if asked else os_user(),
            host=asked.host if asked else identity(),
            reason=reason,
            automatic=automatic,
            plan_digest=plan_digest(plan),
            unreachable=() if plan.old_site_reachable else (plan.from_site,),
            accept_data_loss=accept_data_loss,
            no_fence_wait=no_fence_wait,
            discard_divergent=discard_divergent,
            drill=drill,
            epoch=lease.epoch,
            escalated_from=escalated_from,
            requested=asked.request if asked else None,
        )
        s.store.start_operation(lease, op)
        s.audit().write(
            "operation.started",
            **_asked_fields(asked),
            op=op.id,
            mode=op.mode,
            from_site=op.from_site,
            to_site=op.to_site,
            reason=reason,
            automatic=automatic,
            accept_data_loss=accept_data_loss,
            no_fence_wait=no_fence_wait,
            discard_divergent=discard_divergent,
            escalated_from=escalated_from,
            drill=drill,
            epoch=lease.epoch,
        )
        if on_recorded is not None:
            on_recorded(op)
        return _execute(s, plan, op.id, lease, events, faults, resumed=False)
    finally:
        release_quietly(lease)


def resume_operation(
    s: Session,
    op_id: str | None = None,
    *,
    events: Events | None = None,
    faults: Faults | None = None,
    asked: Asker | None = None,
) -> Outcome:
    op_id = op_id or s.store.current_operation() or _last(s)
    op, _ = s.store.operation(op_id)
    if op.status is OpStatus.SUCCEEDED:
        raise ResumeRefused(f"operation {op.id} already succeeded: {op.to_site} is active")
    if op.status in (OpStatus.ABORTED, OpStatus.REFUSED):
        raise ResumeRefused(
            f"operation {op.id} was {op.status.value}; start a new operation instead"
        )
    plan = replan(s.topology, op)
    lease = Lease(s.client, s.paths, identity())
    # A holder killed mid-operation keeps its lock until its session expires.
    lease.acquire(wait=s.topology.zookeeper.session_timeout + 2.0)
    try:
        s.audit().write(
            "operation.resumed",
            op=op.id,
            epoch=lease.epoch,
            reason=op.reason,
            **_asked_fields(asked),
        )
        return _execute(s, plan, op.id, lease, events, faults, resumed=True)
    finally:
        release_quietly(lease)


@dataclass(frozen=True)
class Asker:
    """The operator a controller runs an operation for: recorded as the operation's
    `by` and `host`, and beside the controller's own user and host in the audit log."""

    by: str  # the operator's OS user
    host: str  # where the operator's sitectl ran (user@host:pid)
    request: str  # the request's node name (requests/NAME)
    controller: str  # the controller that runs it ("SITE user@host:pid")


def _asked_fields(asked: Asker | None) -> dict[str, str]:
    if asked is None:
        return {}
    return {
        "requested_by": asked.by,
        "requested_from": asked.host,
        "request": asked.request,
        "executed_by": asked.controller,
    }


@dataclass(frozen=True)
class AbortResult:
    stopped: bool  # False: requested, but the operation had not stopped within the wait
    message: str  # for the operator: where the service is and what to run next


def abort_operation(
    s: Session,
    op_id: str | None = None,
    *,
    wait: float = ABORT_WAIT_S,
    now: bool = False,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> AbortResult:
    """Ask the operation to stop at its next safe point and wait up to `wait` seconds
    until it has (0: do not wait). `now`: the step under way stops at once too, its
    playbook killed and the step left half-done (running), instead of finishing first.
    If nobody holds the lease, or its holder goes away meanwhile (a killed sitectl),
    close the operation record here."""
    op_id = op_id or s.store.current_operation()
    if not op_id:
        raise ResumeRefused("no operation in progress to abort")
    op, _ = s.store.operation(op_id)
    if op.status not in UNFINISHED:
        raise ResumeRefused(f"operation {op.id} is {op.status.value}: nothing to abort")
    who = identity()
    s.store.request_abort(op.id, who, now=now)
    deadline = clock() + max(wait, 0.0)
    lease = Lease(s.client, s.paths, who)  # one, tried at each look: one session listener
    try:
        while True:
            op, _ = s.store.operation(op_id)
            if op.status in FINISHED_OP:
                return _stopped(op)
            closed = _close_if_free(s, lease, op_id, who)
            if closed is not None:
                return closed
            left = deadline - clock()
            if left <= 0:
                break
            sleep(min(ABORT_POLL_S, left))
    finally:
        release_quietly(lease)
    late = f", but operation {op_id} had not stopped after {wait:g} s:" if wait > 0 else ":"
    return AbortResult(
        False,
        f"abort requested{late} it stops at its next safe point, once the step under way "
        "has finished. `sitectl status` shows when it has, which site is active and what "
        "is left half-done.",
    )


def _stopped(op: OperationRecord) -> AbortResult:
    if op.status is OpStatus.ABORTED:
        return AbortResult(True, f"operation {op.id} aborted: {op.message}")
    # It ended (succeeded, or refused before any change) before it reached a safe point.
    return AbortResult(
        True, f"operation {op.id} {op.status.value} before it could stop: {op.message}"
    )


def _close_if_free(s: Session, lease: Lease, op_id: str, who: str) -> AbortResult | None:
    """Close the operation as aborted if nobody holds the lease; None if someone does."""
    try:
        lease.acquire()
    except SitectlError:
        return None  # a live process holds it: it stops at its next group boundary
    op, version = s.store.operation(op_id)  # as its last holder left it
    if op.status in FINISHED_OP:
        return _stopped(op)
    records = s.store.records(op.id)
    try:
        plan = replan(s.topology, op)
    except ResumeRefused:  # the checkpoints no longer match the topology's plan
        where = "the topology changed since it started: its checkpoints cannot say what serves"
        advice = "`sitectl health` shows what runs where"
    else:
        where = where_is_the_service(plan, records)
        advice = abort_advice(plan, records)
    closed = op.with_status(
        OpStatus.ABORTED, now=time.time(), message=f"aborted by {who}: {where}; {advice}"
    )
    s.store.update_operation(lease, closed, version)
    s.store.clear_current(lease)
    s.audit().write("operation.aborted", op=op.id, epoch=lease.epoch, detail=where)
    # Nobody ran it to tell its targets: its last run died (the abort is its end).
    notifier = Notifier(s.topology.notifications, s.topology.base_dir, s.audit())
    notices = OperationNotices(notifier, closed, s.topology.cluster, epoch=lease.epoch)
    notices.notify("failed", None, closed.message, OpStatus.ABORTED.value)
    notifier.close()
    return _stopped(closed)


def replan(topo: Topology, op: OperationRecord) -> Plan:
    observed = ObservedState(
        active_site=op.from_site,
        unreachable_sites=frozenset(op.unreachable),
        mirrors={v.name: MirrorView(op.from_site, op.to_site) for v in topo.volumes},
    )
    trigger = cast(Trigger, op.trigger)
    if op.mode is Mode.REPROTECT:
        plan = build_reprotect_plan(topo, ObservedState(active_site=op.from_site), trigger)
    else:
        plan = build_plan(topo, observed, op.mode, op.to_site, trigger)
    digest = plan_digest(plan)
    if digest != op.plan_digest:
        raise ResumeRefused(
            f"the topology changed since operation {op.id} started (plan {op.plan_digest} → "
            f"{digest}): restore the topology it ran with, or abort it"
        )
    return plan


def _execute(
    s: Session,
    plan: Plan,
    op_id: str,
    lease: Lease,
    events: Events | None,
    faults: Faults | None,
    *,
    resumed: bool,
) -> Outcome:
    artifacts = operation_artifacts(s.local_state, op_id, s.topology.policy.artifacts_kept)
    notifier = Notifier(s.topology.notifications, s.topology.base_dir, s.audit())
    op, _ = s.store.operation(op_id)
    notices = OperationNotices(notifier, op, s.topology.cluster, epoch=lease.epoch)
    notices.notify(*_opening(op, lease.epoch, resumed))
    executor = Executor(
        plan=plan,
        topology=s.topology,
        store=s.store,
        lease=lease,
        handlers=default_handlers(
            lambda site: s.store.set_active_site(lease, site),
            LeasedTickets(TicketStore(s.client, s.paths), lease),
            lambda: takeover_time(s, plan.from_site),
        ),
        audit=s.audit(),
        artifacts=artifacts,
        events=events or NoEvents(),
        faults=faults or Faults(),
        notify=notices.notify,
    )
    try:
        try:
            op = executor.run(op_id)
        except Exception as exc:  # lease lost, ZooKeeper gone: the next run resumes it
            notices.notify(
                "failed", None, f"operation {op_id} interrupted: {exc}", status="interrupted"
            )
            raise
        # A resumed operation's record still names the step that failed in an earlier run.
        step = None if op.status is OpStatus.SUCCEEDED else op.failed_step
        notices.notify(closing_event(op.status), step, op.message, op.status.value)
    finally:
        # Bounded: a receiver that hangs does not keep the operation's process.
        notifier.close()
    steps = s.store.records(op_id)
    return Outcome(op=op, plan=plan, steps=steps, figures=executor.figures)


def _opening(op: OperationRecord, epoch: int, resumed: bool) -> tuple[str, None, str]:
    """The first event of a run of `op`: started, or resumed (a later run, epoch higher)."""
    move = f"{op.mode.value} {op.from_site}→{op.to_site}"
    if resumed:
        return "resumed", None, f"{move} resumed at epoch {epoch}"
    return "started", None, f"{move} started by {op.by}: {op.reason}"


def operation_artifacts(local_state: Path, op_id: str, kept: int) -> Path:
    """The artifact directory of operation `op_id` (ansible-runner's runs of its steps),
    created 0700 under `local_state` (no part of it below may be a link); the artifacts of
    all but the newest `kept` operations, this one always among them, are removed."""
    root = local_state / ARTIFACTS
    here = private_dir(root / op_id, root=local_state)
    prune_artifacts(root, kept, op_id)
    return here


def prune_artifacts(root: Path, kept: int, current: str) -> list[str]:
    """Remove the artifact directories of all but the newest `kept` operations (by their
    ids, which sort by start time) under `root`, never `current`'s; return the ids removed.

    The artifacts hold each run's output (events, stdout, the extra vars) and nothing
    else needs them once an operation is over: its record is in ZooKeeper, its story in
    the audit log. Anything under `root` that is not an operation's directory is left."""
    found = sorted(
        entry.name
        for entry in root.iterdir()
        if OPERATION_ID.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink()
    )
    older = [op for op in found if op != current]
    removed = older[: max(0, len(older) - (kept - 1))]
    for op in removed:
        shutil.rmtree(root / op, ignore_errors=True)
    return removed


def takeover_time(s: Session, site: str) -> float | None:
    """When `site` took over: the start of the last move to it that succeeded (its first
    moment as a candidate, so nothing the old site wrote since is missed); None when no
    such move is recorded."""
    for op_id in reversed(s.store.operation_ids()):
        op, _ = s.store.operation(op_id)
        if op.mode is not Mode.REPROTECT and op.status is OpStatus.SUCCEEDED:
            return op.started if op.to_site == site else None
    return None


def _last(s: Session, *, missing_ok: bool = False) -> str:
    ids = s.store.operation_ids()
    if ids:
        return ids[-1]
    if missing_ok:
        return ""
    raise ResumeRefused("no operation recorded yet")
