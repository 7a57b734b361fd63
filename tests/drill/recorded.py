"""Recorded drills built by hand for the pure tests: a small language for timelines.

`drill(...)` returns a DrillRecord as `run_drill` would have written it; times are
seconds after T0, so each table row reads as the story it tells.
"""

from __future__ import annotations

from orchestrator.drill.measure import targets
from orchestrator.drill.model import (
    Attempt,
    Canary,
    CheckRow,
    DrillRecord,
    Leg,
    OperationRun,
    Phase,
    Snapshot,
    StepRun,
)

T0 = 1_795_000_000.0

STEPS = (
    ("preflight/ldap", 0.0, 1.2),
    ("readiness/gate", 1.2, 2.0),
    ("disable-application/dc1/mta", 2.0, 7.0),
    ("final-sync/mailstore", 7.0, 9.5),
    ("mount/dc2/mailstore", 9.5, 11.5),
    ("dns/example.test.", 11.5, 12.0),
    ("start-services/dc2/mta", 12.0, 15.0),
    ("verify/application/dc2", 15.0, 15.1),
)


def at(seconds: float) -> float:
    return T0 + seconds


def mail(key: str, site: str, seconds: float, found: bool | None, kind: str = "smtp") -> Canary:
    return Canary(kind, key, site, at(seconds), found)


def probes(
    old: str,
    new: str,
    accepted_old_until: float,
    accepted_new_from: float,
    start: float = 0.0,
    stop: float = 30.0,
    step: float = 0.5,
) -> list[Attempt]:
    """A write-probe loop: accepted at `old`, refused in between, accepted at `new`."""
    out, t = [], start
    while t <= stop:
        if t <= accepted_old_until:
            out.append(Attempt(at(t), old, "127.0.1.1", True, key=f"probe {t:g}"))
        elif t >= accepted_new_from:
            out.append(Attempt(at(t), new, "127.0.2.1", True, key=f"probe {t:g}"))
        else:
            out.append(Attempt(at(t), old, "127.0.1.1", False, "connection refused"))
        t += step
    return out


def operation(
    mode: str,
    old: str,
    new: str,
    start: float,
    status: str = "succeeded",
    failed_step: str | None = None,
) -> OperationRun:
    steps = []
    for step_id, a, b in STEPS:
        step_id = step_id.replace("dc1", old).replace("dc2", new)
        if failed_step and steps and steps[-1].status == "failed":
            steps.append(StepRun(step_id, "pending", None, None))
            continue
        state = "failed" if step_id == failed_step else "done"
        steps.append(
            StepRun(
                step_id,
                state,
                at(start + a),
                at(start + b),
                1,
                "port 2525 in use" if state == "failed" else "applied and verified",
            )
        )
    end = max(s.finished for s in steps if s.finished)
    return OperationRun(
        f"op-{mode}-{old}-{new}",
        mode,
        old,
        new,
        status,
        at(start),
        end,
        failed_step,
        "" if status == "succeeded" else f"step {failed_step} failed",
        steps,
    )


def leg(
    name: str,
    old: str,
    new: str,
    start: float,
    lost: frozenset[int] = frozenset(),
    status: str = "succeeded",
    failed_step: str | None = None,
) -> Leg:
    from orchestrator.drill.model import Verification

    series = [mail(f"canary {n}", old, start - 2 + n * 0.2, n not in lost) for n in range(1, 6)]
    return Leg(
        name,
        old,
        new,
        canaries=[*series, Canary("ldap", "token", old, at(start - 0.5), 4 not in lost)],
        attempts=probes(old, new, start + 6.0, start + 15.5, start, start + 20.0),
        operations=[operation("switchover", old, new, start, status, failed_step)],
        verifications=[
            Verification(
                "mail delivered over SMTP and read over IMAP",
                new,
                status == "succeeded",
                "sent and read",
                at(start + 16),
                at(start + 17),
            )
        ]
        if status == "succeeded"
        else [],
    )


REPROTECT_STEPS = (
    "reprotect/mailstore",
    "reprotect/object-store/mail-blobs",
    "reprotect/dns/lab.internal.",
)


def protect(
    home: str, other: str, start: float, replicated: bool = True, status: str = "succeeded"
) -> Leg:
    """The failback's last reprotect: mirrors from `home` towards `other` again, and the
    S3 object written at `home` after the move back found (or not) at `other`."""
    from orchestrator.drill.model import Verification

    failed_step = REPROTECT_STEPS[1] if status == "failed" else None
    steps = [
        StepRun(
            step_id,
            "failed" if step_id == failed_step else "done",
            at(start + n),
            at(start + n + 1),
            1,
            "applied and verified",
        )
        for n, step_id in enumerate(REPROTECT_STEPS)
    ]
    op = OperationRun(
        f"op-reprotect-{home}-{other}",
        "reprotect",
        home,
        other,
        status,
        at(start),
        at(start + len(steps)),
        failed_step,
        "",
        steps,
    )
    written = Canary("s3", f"_sitectl/drill/back-written-at-{home}", home, at(start - 5))
    checks = [
        Verification(
            "S3 objects replicated back once reprotected",
            other,
            replicated,
            f"1 object(s) written at the active site are in {other}"
            if replicated
            else f"1 object(s) written at the active site not in {other} after 30 s: {written.key}",
            at(start + 4),
            at(start + 5),
        )
    ]
    return Leg(
        "protect",
        home,
        other,
        canaries=[written],
        operations=[op],
        verifications=checks if status == "succeeded" else [],
        moves=False,
    )


def drill(
    *legs: Leg,
    failback: bool = False,
    active: str = "dc2",
    stopped: str = "",
    rto: float | None = None,
    rpo: float | None = None,
) -> DrillRecord:
    given = {k: v for k, v in (("rto", rto), ("rpo", rpo)) if v is not None}
    end = max(o.finished or 0 for lg in legs for o in lg.operations) + 3 if legs else at(5)
    record = DrillRecord(
        id="drill-20261122T140000Z-abcd",
        cluster="sitectl-lab",
        from_site="dc1",
        to_site="dc2",
        failback=failback,
        started=at(-5),
        by="alice",
        host="ops1",
        reason="Q4 <b>DR</b> drill",
        targets=targets(given),
        finished=end,
        phases=[Phase("pre-flight", at(-5), at(-3), True, "ready to move to dc2")],
        legs=list(legs),
        active_site=active,
        stopped=stopped,
        snapshots=[
            Snapshot(
                "before",
                at(-5),
                "dc1",
                [
                    CheckRow("ldap", "dc1", "ldap://127.0.1.11:389", "ok"),
                    CheckRow("mirrors", "dc2", "mirror mailstore", "degraded", "lags 12 s"),
                ],
                {"ready": True, "verdict": "ready to move to dc2"},
            )
        ],
    )
    return record
