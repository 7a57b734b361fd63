"""The drill: pre-flight → canaries → move (the engine) → verification at the new site,
and with failback: reprotect → in sync → canaries → move back → verification →
reprotect, so the home site ends protected towards the other again.

The drill never works around the engine: it calls the same operations an operator
would, and records what they and the servers answered. Any failure stops it at the
point it reached — the drill does not improvise a rollback — and the record says which
site is active and what to run next. The caller writes the report in every case.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from orchestrator.asking.client import taken
from orchestrator.asking.follow import Follower, PlanEvents
from orchestrator.asking.model import OperationRequest, Verb
from orchestrator.asking.store import RequestStore
from orchestrator.audit import identity, os_user
from orchestrator.checks import readiness, run_checks
from orchestrator.config.model import Topology
from orchestrator.drill import canaries, verify
from orchestrator.drill.measure import verdict
from orchestrator.drill.model import (
    Canary,
    CheckRow,
    DrillRecord,
    Leg,
    OperationRun,
    Phase,
    Snapshot,
    StepRun,
    Targets,
)
from orchestrator.drill.writeprobe import WriteProbe
from orchestrator.engine import operation as engine
from orchestrator.engine.executor import Events, NoEvents
from orchestrator.engine.progress import plan_digest, recovery_advice, where_is_the_service
from orchestrator.engine.records import Mode, OpStatus
from orchestrator.errors import SitectlError
from orchestrator.plan import Plan
from orchestrator.salvage import report as salvage_report

log = logging.getLogger("sitectl.drill")

SYNC_WAIT_S = 120.0  # bound on "in sync" after a reprotect before giving up on failback
NEW_SITE_WRITE_WAIT_S = 60.0  # bound on the write probe reaching the new site after a move


@dataclass(frozen=True)
class DrillOptions:
    to_site: str
    targets: Targets
    failback: bool = False
    mode: str = "switchover"  # or "failover": no final sync, so loss is possible
    reason: str = ""
    canary_count: int = 5
    canary_spacing_s: float = 0.2
    # Run the moves in this process; False: ask the leading controller for each and
    # follow it (what `sitectl drill` does unless --local).
    local: bool = True


class Watcher:
    """How the drill speaks while it runs; the CLI draws it, tests keep the defaults."""

    def say(self, text: str) -> None:
        log.info(text)

    def engine(self, plan: Plan) -> AbstractContextManager[Events]:
        return contextlib.nullcontext(NoEvents())


class DrillStopped(SitectlError):
    def __init__(self, why: str, advice: list[str], where: str = "") -> None:
        super().__init__(why)
        self.advice = advice
        self.where = where


def new_drill_id(now: float) -> str:
    return "drill-" + time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(2)


def run_drill(topo: Topology, options: DrillOptions, watcher: Watcher | None = None) -> DrillRecord:
    """Run the drill; always return its record, finished or stopped."""
    watcher = watcher or Watcher()
    now = time.time()
    record = DrillRecord(
        id=new_drill_id(now),
        cluster=topo.cluster,
        from_site="",
        to_site=options.to_site,
        failback=options.failback,
        started=now,
        by=os_user(),
        host=socket.gethostname(),
        reason=options.reason or "(no reason given)",
        targets=options.targets,
    )
    try:
        with engine.session(topo) as s:
            record.audit_log = str(s.audit().path)
            try:
                _drill(s, record, options, watcher)
            except DrillStopped as exc:
                record.stopped, record.advice, record.where = str(exc), exc.advice, exc.where
            except SitectlError as exc:
                record.stopped = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # a bug must still leave a report behind
                log.exception("the drill failed unexpectedly")
                record.stopped = f"internal error: {type(exc).__name__}: {exc}"
            except KeyboardInterrupt:
                # The engine has stopped at a checkpoint; the report must say where.
                record.stopped = "interrupted by the operator (Ctrl-C)"
                record.advice.append(
                    "`sitectl status` shows the operation it left; "
                    "`sitectl resume` or `sitectl abort` it"
                )
            _closing(s, record, watcher)
    except SitectlError as exc:  # ZooKeeper unreachable: nothing ran
        record.stopped = record.stopped or f"{type(exc).__name__}: {exc}"
    record.finished = time.time()
    return record


def _drill(s: engine.Session, record: DrillRecord, options: DrillOptions, watcher: Watcher) -> None:
    topo = s.topology
    home = engine.describe(s).active_site
    record.from_site = home
    s.audit().write(
        "drill.started",
        drill=record.id,
        from_site=home,
        to_site=options.to_site,
        failback=options.failback,
        reason=record.reason,
    )
    if options.to_site == home or options.to_site not in topo.datacenters():
        others = ", ".join(d for d in topo.datacenters() if d != home)
        raise DrillStopped(
            f"--to {options.to_site}: the drill moves the service away from the active site "
            f"{home} to another datacenter ({others})",
            [f"{home} is active; nothing was changed"],
        )
    with _phase(record, "pre-flight", watcher) as phase:
        snap = _snapshot(topo, "before", home, options.to_site)
        record.snapshots.append(snap)
        phase.detail = snap.readiness.get("verdict", "")
    there = Leg("there", home, options.to_site)
    record.legs.append(there)
    carried = _move(s, record, there, options.mode, options, watcher)
    if not options.failback:
        return
    back = Leg("back", options.to_site, home, canaries=carried)
    record.legs.append(back)
    _reprotect(s, record, back, watcher, options)
    written_home = _move(s, record, back, "switchover", options, watcher)
    # Leave the service as it was found: home active *and* protected towards the other
    # site again, so the next drill (or a real failover) starts from a mirrored state.
    # The writes made at home since the move back must reach the other site once the
    # mirrors point there again: that is what proves the protection, not the reprotect's
    # own success.
    home_again = Leg("protect", home, options.to_site, canaries=written_home, moves=False)
    record.legs.append(home_again)
    _reprotect(s, record, home_again, watcher, options)


def _move(
    s: engine.Session,
    record: DrillRecord,
    leg: Leg,
    mode: str,
    options: DrillOptions,
    watcher: Watcher,
) -> list[Canary]:
    """One move with its canaries and verification; returns the new site's writes."""
    topo = s.topology
    with _phase(record, f"canaries at {leg.from_site}", watcher) as phase:
        leg.canaries += _write_canaries(topo, leg, record.id, options)
        phase.detail = f"{sum(c.found is None for c in leg.canaries)} writes accepted"
    probe = WriteProbe(topo, record.id, leg.name).start()
    try:
        with _phase(record, f"{mode} {leg.from_site}→{leg.to_site}", watcher) as phase:
            outcome = _operate(s, record, leg, mode, leg.to_site, watcher, options)
            phase.detail = outcome.op.message
            finished = outcome.op.finished or time.time()
            # The RTO ends at the first write the new site accepts: keep probing until then.
            canaries.poll(lambda: probe.accepted_at(leg.to_site, finished), NEW_SITE_WRITE_WAIT_S)
    finally:
        leg.attempts = probe.stop()
        leg.canaries += [c for c in probe.canaries() if c.site == leg.from_site]
    carried = [c for c in probe.canaries() if c.site == leg.to_site]
    with _phase(record, f"verify at {leg.to_site}", watcher) as phase:
        phase.detail = verify.check_canaries(topo, leg.to_site, record.id, leg.canaries)
        checks, writes = verify.new_site_works(topo, leg.to_site, record.id, leg.name)
        leg.verifications += checks
        failed = [v for v in checks if not v.ok]
        if failed:
            raise DrillStopped(
                f"{leg.to_site} took over but does not work end to end: "
                + "; ".join(f"{v.name}: {v.detail}" for v in failed),
                [
                    f"{leg.to_site} is active (the move succeeded); fix what failed, then move "
                    f"back with `sitectl reprotect` and `sitectl switchover --to {leg.from_site}`"
                ],
            )
    return carried + writes


def _reprotect(
    s: engine.Session, record: DrillRecord, leg: Leg, watcher: Watcher, options: DrillOptions
) -> None:
    with _phase(record, "reprotect", watcher) as phase:
        outcome = _operate(s, record, leg, "reprotect", None, watcher, options)
        phase.detail = (
            f"mirrors reversed: {leg.from_site} protects towards {leg.to_site} "
            f"({len(outcome.steps)} steps)"
        )
        salvaged = salvage_report.summarize(outcome.figures, leg.to_site)
        if salvaged:
            phase.detail += f"; {salvaged}"
    with _phase(record, f"in sync {leg.from_site}→{leg.to_site}", watcher) as phase:
        at = s.topology.model_copy(update={"active_site": leg.from_site})
        ready = canaries.poll(lambda: readiness(at, leg.to_site).ready, SYNC_WAIT_S, 1.0)
        last = readiness(at, leg.to_site)
        back = verify.replicated_back(s.topology, leg.to_site, leg.canaries)
        leg.verifications.append(back)
        problems = ([] if ready else [last.describe()]) + (
            [] if back.ok else [f"the object store: {back.detail}"]
        )
        phase.detail = "; ".join(problems) or f"{last.describe()} {back.detail}"
        if problems:
            copy = (
                []
                if back.ok
                else [
                    f"S3 replication does not carry objects written before its rule existed: "
                    f"copy the objects named above to {leg.to_site} (a batch replication job)"
                ]
            )
            if not leg.moves:
                # The failback is done: the service is home; only its protection is unproven.
                raise DrillStopped(
                    f"{leg.to_site} is not in sync after the last reprotect — {phase.detail}",
                    [
                        f"{leg.from_site} is active and serving, as before the drill; "
                        f"{leg.to_site} is not yet a standby it can move to",
                        *copy,
                        f"`sitectl readiness --to {leg.to_site}` says when it is",
                    ],
                )
            raise DrillStopped(
                f"{leg.to_site} is not in sync after the reprotect — {phase.detail}",
                [
                    f"{leg.from_site} is active and stays so: switching back now would lose what "
                    f"{leg.to_site} lacks",
                    *copy,
                    f"then, once `sitectl readiness --to {leg.to_site}` is ready, run "
                    f"`sitectl switchover --to {leg.to_site}`",
                ],
            )


def _operate(
    s: engine.Session,
    record: DrillRecord,
    leg: Leg,
    mode: str,
    to: str | None,
    watcher: Watcher,
    options: DrillOptions,
) -> engine.Outcome:
    plan = engine.plan_operation(s, Mode(mode), to, trigger="drill")
    reason = f"DR drill {record.id}: {record.reason}"
    with watcher.engine(plan) as events:
        if options.local:
            outcome = engine.start_operation(s, plan, reason=reason, drill=record.id, events=events)
        else:
            outcome = _asked(s, plan, reason, record.id, events)
    leg.operations.append(operation_run(outcome))
    if outcome.op.status is not OpStatus.SUCCEEDED:
        where = where_is_the_service(outcome.plan, outcome.steps)
        raise DrillStopped(
            f"{mode} {outcome.plan.from_site}→{outcome.plan.to_site} {outcome.op.status.value} "
            f"at step {outcome.op.failed_step}: {_failure(outcome)}",
            [recovery_advice(outcome.plan, outcome.steps, outcome.op.id)],
            where,
        )
    return outcome


def _asked(
    s: engine.Session, plan: Plan, reason: str, drill: str, events: Events
) -> engine.Outcome:
    """Ask the leading controller for the move and follow it to its end: the outcome as
    the engine would have returned it in this process."""
    follower = Follower(s.store, RequestStore(s.client, s.paths))
    name = follower.requests.submit(
        OperationRequest(
            verb=Verb(plan.mode.value),
            by=os_user(),
            host=identity(),
            reason=reason,
            submitted=time.time(),
            to_site=plan.to_site if plan.mode is not Mode.REPROTECT else None,
            plan_digest=plan_digest(plan),
            drill=drill,
        )
    )
    found = taken(follower, name)
    op = follower.follow(found.operation, PlanEvents({st.id: st for st in plan.steps()}, events))
    answer = follower.requests.answer(name)
    figures = dict(answer[0].figures) if answer is not None else {}
    return engine.Outcome(op, plan, s.store.records(op.id), figures)


def operation_run(outcome: engine.Outcome) -> OperationRun:
    op = outcome.op
    steps = [
        StepRun(step.id, r.status.value, r.started, r.finished, r.attempts, r.detail)
        for step in outcome.plan.steps()
        if (r := outcome.steps.get(step.id)) is not None
    ]
    return OperationRun(
        op.id,
        op.mode,
        op.from_site,
        op.to_site,
        op.status.value,
        op.started,
        op.finished,
        op.failed_step,
        op.message,
        steps,
        {k: v for k, v in outcome.figures.items() if _plain(v)},
    )


def _plain(value: object) -> bool:
    return value is None or isinstance(value, int | float | str | bool)


def _failure(outcome: engine.Outcome) -> str:
    step = outcome.steps.get(outcome.op.failed_step or "")
    return step.detail if step is not None and step.detail else outcome.op.message


def _write_canaries(topo: Topology, leg: Leg, drill_id: str, options: DrillOptions) -> list[Canary]:
    site = leg.from_site
    out = canaries.write_series(
        canaries.mail_endpoint(topo, site),
        drill_id,
        leg.name,
        options.canary_count,
        options.canary_spacing_s,
    )
    if topo.ldap is not None:
        out.append(canaries.write_ldap(topo, site, f"{drill_id} {leg.name} canary at {site}"))
    if topo.object_store is not None:
        key = f"{canaries.OBJECT_PREFIX}{drill_id}/{leg.name}-canary-at-{site}"
        out.append(canaries.put_object(topo, site, key))
    refused = [c for c in out if c.found is False]
    if refused:
        # The old site refusing writes before the move is a finding, not a loss to count.
        raise DrillStopped(
            f"{site} refused canary writes before the move: {refused[0].detail}",
            [f"{site} is still active; nothing was moved"],
        )
    return out


def _snapshot(topo: Topology, label: str, active: str, other: str) -> Snapshot:
    # The checks judge by the topology's active site: give them the one sitectl recorded.
    at = topo.model_copy(update={"active_site": active})
    sweep = run_checks(at)
    ready = readiness(at, other)
    rows = [CheckRow(r.system, r.site, r.target, r.status.value, r.reason) for r in sweep.results]
    return Snapshot(label, time.time(), active, rows, ready.to_json())


def _closing(s: engine.Session, record: DrillRecord, watcher: Watcher) -> None:
    """Record where the service is now and the health around it; never raises."""
    try:
        active = engine.describe(s).active_site
        record.active_site = active
        other = next(d for d in s.topology.datacenters() if d != active)
        with _phase(record, "checks after", watcher, fatal=False):
            record.snapshots.append(_snapshot(s.topology, "after", active, other))
    except SitectlError as exc:
        record.advice.append(f"the state after the drill could not be read: {exc}")
    record.finished = time.time()
    result = verdict(record)
    s.audit().write(
        "drill.finished",
        drill=record.id,
        passed=result.passed,
        active_site=record.active_site,
        stopped=record.stopped,
        failures=list(result.failures),
    )
    with contextlib.suppress(SitectlError):
        tokens = [c.key for leg in record.legs for c in leg.canaries if c.kind == "ldap"]
        if record.active_site and tokens:
            canaries.remove_ldap_values(s.topology, record.active_site, tokens)


@contextmanager
def _phase(record: DrillRecord, name: str, watcher: Watcher, fatal: bool = True) -> Iterator[Phase]:
    phase = Phase(name, time.time())
    record.phases.append(phase)
    watcher.say(f"{name} …")
    try:
        yield phase
    except Exception as exc:
        phase.ok = False
        phase.detail = phase.detail or str(exc)
        if fatal:
            raise
    else:
        phase.ok = True
    finally:
        phase.finished = time.time()
        watcher.say(f"{name}: {'ok' if phase.ok else 'FAILED'} {phase.detail}".rstrip())
