"""Pure questions about an operation in flight: what runs next, where the service is,
and what an operator should do when it stopped half-way."""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.engine.records import FINISHED_STEP, StepRecord, StepStatus
from orchestrator.plan.digest import plan_digest as plan_digest  # the engine's, re-exported
from orchestrator.plan.model import Group, Phase, Plan, Step

Records = Mapping[str, StepRecord]


def status_of(records: Records, step: Step) -> StepStatus:
    record = records.get(step.id)
    return record.status if record else StepStatus.PENDING


def next_group(plan: Plan, records: Records) -> tuple[int, Group] | None:
    """The first group with a step that has not finished, or None when all have."""
    for index, group in enumerate(plan.groups):
        if any(status_of(records, s) not in FINISHED_STEP for s in group.steps):
            return index, group
    return None


def steps_to_run(group: Group, records: Records) -> list[Step]:
    return [s for s in group.steps if status_of(records, s) not in FINISHED_STEP]


def _finished(plan: Plan, records: Records, phase: Phase) -> bool:
    steps = [s for s in plan.steps() if s.phase is phase]
    return bool(steps) and all(status_of(records, s) in FINISHED_STEP for s in steps)


def _started(plan: Plan, records: Records, phases: set[Phase]) -> bool:
    return any(
        status_of(records, s) is not StepStatus.PENDING for s in plan.steps() if s.phase in phases
    )


_SIDE_EFFECTS = {
    Phase.DISABLE_APPLICATION,
    Phase.FINAL_SYNC,
    Phase.BREAK_MIRRORS,
    Phase.UNMOUNT,
    Phase.TICKET,
    Phase.MOUNT,
    Phase.DNS,
    Phase.START_SERVICES,
    Phase.VERIFY,
}


def changed_anything(plan: Plan, records: Records) -> bool:
    """Whether any step that changes the world has started (checks, the gate and an
    approval do not; an operator's custom step may, so it counts).

    A reprotect's salvage only adds to the active site what the old site alone held, and
    its first steps make sure the standby's application is stopped: one that found it
    stopped already ("already true") changed nothing. So a reprotect refused by its
    salvage decision after those is still refused before any change to what it protects."""
    if plan.mode == "reprotect":
        return any(
            status_of(records, s) is not StepStatus.PENDING and not _found_done(records, s)
            for s in plan.steps()
            if s.phase in (Phase.REPROTECT, Phase.CUSTOM)
        )
    return _started(plan, records, _SIDE_EFFECTS | {Phase.REPROTECT, Phase.CUSTOM})


def _found_done(records: Records, step: Step) -> bool:
    record = records.get(step.id)
    return (
        record is not None
        and record.status is StepStatus.DONE
        and record.detail.startswith("already true")
    )


def where_is_the_service(plan: Plan, records: Records) -> str:
    """One sentence: which site holds the data and serves, judged from the checkpoints."""
    old, new = plan.from_site, plan.to_site
    if plan.mode == "reprotect":
        # A reprotect never stops the active site: only its mirrors' direction moves.
        if _finished(plan, records, Phase.REPROTECT):
            return f"{old} is active and protects towards {new}"
        if not _started(plan, records, {Phase.REPROTECT}):
            return f"{old} is active and serves: nothing was changed yet"
        return f"{old} is active and serves; its protection towards {new} is half-done"
    if all(status_of(records, s) in FINISHED_STEP for s in plan.steps()):
        return f"{new} is active: every step finished"
    if not _started(plan, records, _SIDE_EFFECTS):
        return f"{old} is still active: nothing was changed yet"
    if not _started(plan, records, {Phase.BREAK_MIRRORS, Phase.MOUNT}):
        return (
            f"{old} still holds the data, but its application may be stopped and its "
            f"volumes unmounted; the mirrors towards {new} are intact"
        )
    if not _finished(plan, records, Phase.MOUNT):
        return (
            f"half-way: the mirrors towards {new} may be broken and neither site may serve; "
            f"{old}'s copy is the newest"
        )
    if not _finished(plan, records, Phase.DNS):
        return f"{new} holds the data (volumes mounted there) but DNS may still point at {old}"
    return f"{new} holds the data and DNS points at it; its services are not all verified"


def recovery_advice(plan: Plan, records: Records, op_id: str) -> str:
    """What to run next: resume forward, or roll back while the old site still can."""
    return _forward_or_back(
        plan, records, f"`sitectl resume {op_id}` continues from the last checkpoint"
    )


def abort_advice(plan: Plan, records: Records) -> str:
    """What to run after an abort. An aborted operation is never resumed (its abort
    request stays on record), but a new one checks each step ("already true?") before
    acting, so it goes on from where this one stopped without redoing anything."""
    again = (
        "sitectl reprotect"
        if plan.mode == "reprotect"
        else f"sitectl {plan.mode} --to {plan.to_site}"
    )
    if not _started(plan, records, _SIDE_EFFECTS | {Phase.REPROTECT}):
        return f"nothing to roll back; `{again}` starts it again"
    return _forward_or_back(
        plan, records, f"to go forward, run `{again}` again: it skips what is already done"
    )


def _forward_or_back(plan: Plan, records: Records, forward: str) -> str:
    if plan.mode == "reprotect":
        return f"{forward}; the service on {plan.from_site} is not affected meanwhile"
    if not _started(plan, records, {Phase.BREAK_MIRRORS, Phase.MOUNT}):
        return (
            f"{forward}; or roll back: mount the volumes and start the application on "
            f"{plan.from_site} again (`sitectl runbook` lists the commands; if its site "
            f"ticket was released, `sitectl ticket grant {plan.from_site} --force REASON` "
            "first, or its start gate refuses) — no data has moved"
        )
    return f"{forward}; rolling back now would need the mirrors reversed, so go forward"
