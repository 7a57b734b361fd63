"""What the controller's live status page shows (pure): the controller's Board, one read
of the cluster (ZooKeeper and the drill reports, `ClusterRead`) and the latest health
sweep, turned into rows a template draws (`PageView`). No I/O: the tests give it plain
data and read the HTML back; controller/pagesource.py does the reading.

The health sweep is the Board's `health` field: a `Sweep.to_json()` with `at` (when it
ended, this controller's clock) added. Lag against the RPO limits is computed from that
sweep exactly as the readiness gate computes it (checks/readiness.py), so the page and a
failover's gate never disagree on the figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.checks.readiness import Readiness, readiness
from orchestrator.checks.result import CheckResult, Status, Sweep
from orchestrator.checks.sweep import SYSTEMS
from orchestrator.config.model import Topology
from orchestrator.coordination.ticket import Ticket
from orchestrator.history import HistoryRow, took_text
from orchestrator.records import ApprovalRequest, OperationRecord, StepRecord, StepStatus

# Roles of a site on the page, and the verdicts of a site.
UP, DEGRADED, DOWN, UNKNOWN = "up", "degraded", "down", "unknown"
_KIND_LABEL = {"volume": "volume mirrors", "ldap": "LDAP", "object_store": "object store"}
# A sweep older than this many probe intervals (and at least a minute) is shown as stale.
_STALE_SWEEPS = 6


@dataclass(frozen=True)
class StepLine:
    id: str
    phase: str
    status: str  # a StepStatus value; "pending" for a planned step not started yet
    seconds: float | None
    detail: str = ""
    attempts: int = 0


@dataclass(frozen=True)
class OperationRead:
    record: OperationRecord
    in_progress: bool  # the cluster's current operation, not only its last
    steps: tuple[StepLine, ...]  # in the plan's order, pending ones too when `planned`
    planned: bool  # False: the plan could not be rebuilt; only the steps that started
    waiting: tuple[ApprovalRequest, ...] = ()  # approvals it waits for now


@dataclass(frozen=True)
class ClusterRead:
    """One read of what ZooKeeper and the drill reports hold (controller/pagesource.py)."""

    at: float
    active_site: str | None  # as recorded; None: no operation ever recorded one
    paused: str | None = None
    ticket: Ticket | None = None
    operation: OperationRead | None = None  # the current operation, else the last
    history: tuple[HistoryRow, ...] = ()
    controllers: tuple[Mapping[str, Any], ...] = ()  # ControllerState.running()
    error: str = ""  # why ZooKeeper could not be read (the rest is then empty)


def step_lines(
    planned: Sequence[tuple[str, str]] | None, records: Mapping[str, StepRecord]
) -> tuple[StepLine, ...]:
    """Every step of the plan in order, each with its checkpoint if it has one; without a
    plan, the checkpointed steps in the order they started (pure)."""

    def line(step_id: str, phase: str, record: StepRecord | None) -> StepLine:
        if record is None:
            return StepLine(step_id, phase, StepStatus.PENDING.value, None)
        return StepLine(
            step_id,
            phase,
            record.status.value,
            record.duration,
            record.detail,
            record.attempts,
        )

    if planned is not None:
        known = {step_id for step_id, _ in planned}
        lines = [line(i, phase, records.get(i)) for i, phase in planned]
        # A checkpoint the plan does not name (it should not happen) is shown, not lost.
        lines += [line(i, "", r) for i, r in records.items() if i not in known]
        return tuple(lines)
    ordered = sorted(records.items(), key=lambda item: (item[1].started or 0.0, item[0]))
    return tuple(line(i, i.split("/", 1)[0], r) for i, r in ordered)


# ---- what the template draws ----------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    status: str
    target: str
    reason: str


@dataclass(frozen=True)
class Cell:
    """One system at one site: how many checks are ok, and the others."""

    status: str  # ok | degraded | down | "" (no check of this system here)
    ok: int = 0
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True)
class SiteRow:
    name: str
    kind: str  # datacenter | witness
    role: str  # active | standby | witness
    verdict: str  # up | degraded | down | unknown
    why: str  # a few words for the verdict
    controller: str  # leader | running | absent | unknown
    cells: Mapping[str, Cell] = field(default_factory=dict)


@dataclass(frozen=True)
class LagRow:
    kind: str  # the replicator kind's label
    seconds: float | None  # None: unknown
    limit: float
    status: str  # ok | over | unknown
    percent: float  # of the limit, capped at 100 for the bar


@dataclass(frozen=True)
class Lag:
    to_site: str
    ready: bool
    verdict: str
    rows: tuple[LagRow, ...]
    replicators: tuple[tuple[str, float | None], ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class OperationShown:
    id: str
    mode: str
    route: str
    status: str
    in_progress: bool
    automatic: bool
    by: str
    reason: str
    started: float
    finished: float | None
    steps: tuple[StepLine, ...]
    planned: bool
    done: int
    current: str  # a sentence: where it stands
    waiting: tuple[ApprovalRequest, ...]
    message: str
    failed_step: str | None


@dataclass(frozen=True)
class HistoryShown:
    id: str
    kind: str
    what: str
    route: str
    status: str
    started: float | None
    took: str
    by: str
    note: str
    report: str | None  # the drill whose report to link (/reports/ID)


@dataclass(frozen=True)
class PageView:
    cluster: str
    served_by: str
    identity: str
    leader: bool
    now: float
    refresh_s: int
    active_site: str
    active_recorded: bool
    banner: str  # good | warn | bad
    headline: str
    sentences: tuple[str, ...]
    decision: str
    sites: tuple[SiteRow, ...]
    systems: tuple[str, ...]
    health_at: float | None
    health_stale: bool
    lag: Lag | None
    rpo_limits: tuple[tuple[str, float], ...]
    drill_targets: str
    ticket: Ticket | None
    automatic: bool  # policy.automatic_promotion
    paused: str | None
    operation: OperationShown | None
    history: tuple[HistoryShown, ...]
    cluster_read_at: float | None
    notes: tuple[str, ...]


# ---- building it ----------------------------------------------------------------------


def sweep_of(health: Mapping[str, Any] | None) -> Sweep | None:
    """The Board's `health` (Sweep.to_json() plus `at`) as a Sweep; None when absent or
    not what a sweep writes (it is shown, never trusted to be well formed)."""
    if not isinstance(health, Mapping) or not isinstance(health.get("results"), list):
        return None
    results = []
    for r in health["results"]:
        try:
            results.append(
                CheckResult(
                    str(r["system"]),
                    None if r.get("site") is None else str(r["site"]),
                    str(r["target"]),
                    Status(r["status"]),
                    str(r.get("reason") or ""),
                    {str(k): float(v) for k, v in (r.get("figures") or {}).items()},
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return Sweep(tuple(results), float(health.get("seconds") or 0.0))


# The systems whose checks talk to a server at the site itself. A mirror's state is read
# from the storage's API (in the lab, from this host) and parity by commands run here:
# they may read fine while every server of the site is gone.
_SERVERS_AT_SITE = frozenset({"zookeeper", "ldap", "object-store", "dns", "application"})


def _answers_for_the_site(r: CheckResult) -> bool:
    """A check that a server at the site must answer: not the application probed on the
    standby and refused, as it must be (that says nothing of whether the site is alive)."""
    stopped = r.system == "application" and r.status is Status.OK and r.figures.get("up") == 0.0
    return r.system in _SERVERS_AT_SITE and not stopped


def judge(results: Sequence[CheckResult], probe: Mapping[str, Any] | None) -> tuple[str, str]:
    """A site's verdict and its few words, from its checks and this controller's probe:
    down when the probe says so or when no server that should answer there does (pure)."""
    probe_status = str((probe or {}).get("status") or "")
    if probe_status == DOWN:
        streak = int((probe or {}).get("streak") or 0)
        return DOWN, f"the application does not answer ({streak} probes in a row)"
    alive = [r for r in results if _answers_for_the_site(r)]
    if alive and all(r.status is Status.DOWN for r in alive):
        return DOWN, f"none of its {len(alive)} servers checked answers"
    bad = [r for r in results if r.status is not Status.OK]
    if bad:
        worst = DOWN if any(r.status is Status.DOWN for r in bad) else DEGRADED
        systems = sorted({r.system for r in bad})
        return DEGRADED, f"{worst}: {', '.join(systems)}"
    if probe_status == DEGRADED:
        return DEGRADED, str((probe or {}).get("reason") or "the application is degraded")
    if not results and not probe_status:
        return UNKNOWN, "not checked yet"
    return UP, ""


def cells_of(results: Iterable[CheckResult]) -> dict[str, Cell]:
    by_system: dict[str, list[CheckResult]] = {}
    for r in results:
        by_system.setdefault(r.system, []).append(r)
    out = {}
    for system, rows in by_system.items():
        bad = [r for r in rows if r.status is not Status.OK]
        status = (
            Status.DOWN.value
            if any(r.status is Status.DOWN for r in bad)
            else (Status.DEGRADED.value if bad else Status.OK.value)
        )
        problems = tuple(Problem(r.status.value, r.target, r.reason) for r in bad)
        out[system] = Cell(status, len(rows) - len(bad), problems)
    return out


def _controller_of(site: str, controllers: Sequence[Mapping[str, Any]], read: bool) -> str:
    if not read:
        return UNKNOWN
    for c in controllers:
        if c.get("site") == site:
            return "leader" if c.get("leader") else "running"
    return "absent"


def lag_of(topo: Topology, active: str, sweep: Sweep, at: float) -> Lag | None:
    """The estimated loss of a move to the standby, per replicator kind, against the RPO
    limits: the readiness gate's own arithmetic on the sweep (pure)."""
    standby = next((s for s in topo.datacenters() if s != active), None)
    if standby is None or active not in topo.datacenters():
        return None
    verdict: Readiness = readiness(
        topo.model_copy(update={"active_site": active}), standby, sweep, clock=lambda: at
    )
    rows = []
    for kind, limit in verdict.limits.items():
        seconds = verdict.loss.get(kind)
        status = "unknown" if seconds is None else ("over" if seconds > limit else "ok")
        percent = 100.0 if seconds is None or limit <= 0 else min(100.0, 100.0 * seconds / limit)
        if seconds is not None and limit <= 0:
            percent = 0.0 if seconds <= 0 else 100.0
        rows.append(LagRow(_KIND_LABEL.get(kind, kind), seconds, limit, status, percent))
    return Lag(
        standby,
        verdict.ready,
        verdict.describe(),
        tuple(rows),
        tuple(sorted(verdict.replicators.items())),
        verdict.notes,
    )


def operation_shown(read: OperationRead) -> OperationShown:
    op = read.record
    running = [s for s in read.steps if s.status == StepStatus.RUNNING.value]
    done = sum(1 for s in read.steps if s.status in ("done", "skipped"))
    asked = {r.step_id for r in read.waiting}
    if not read.in_progress:
        where = f"ended {op.status.value}" + (f" at {op.failed_step}" if op.failed_step else "")
    elif running:
        names = ", ".join(
            f"{s.id} (waiting for approval)" if s.id in asked else s.id for s in running
        )
        where = f"now at {names}"
    elif op.failed_step:
        where = f"stopped at {op.failed_step} ({op.status.value}): resume or abort it"
    else:
        where = f"{op.status.value}, no step running"
    total = len(read.steps)
    return OperationShown(
        id=op.id,
        mode=op.mode.value,
        route=f"{op.from_site} → {op.to_site}",
        status=op.status.value,
        in_progress=read.in_progress,
        automatic=op.automatic,
        by=op.by,
        reason=op.reason,
        started=op.started,
        finished=op.finished,
        steps=read.steps,
        planned=read.planned,
        done=done,
        current=f"step {done + (1 if running else 0)} of {total}: {where}"
        if read.planned and read.in_progress
        else where,
        waiting=read.waiting,
        message=op.message,
        failed_step=op.failed_step,
    )


def history_shown(rows: Iterable[HistoryRow]) -> tuple[HistoryShown, ...]:
    out = []
    for row in rows:
        what = row.mode if row.kind == "operation" else f"drill {row.mode}".rstrip(" ?")
        if row.automatic:
            what += " (automatic)"
        link = None
        if row.kind == "drill" and row.status != "unreadable":
            link = row.id
        elif row.drill:
            link = row.drill
        out.append(
            HistoryShown(
                row.id,
                row.kind,
                what,
                row.route,
                row.status,
                row.started,
                took_text(row),
                row.by,
                row.note,
                link,
            )
        )
    return tuple(out)


def _seconds_text(value: float | None) -> str:
    if value is None:
        return "unset"
    return f"{value / 60:g} min" if value >= 120 else f"{value:g} s"


def build(
    topo: Topology,
    board: Mapping[str, Any],
    cluster: ClusterRead | None,
    now: float,
    *,
    refresh_s: int = 5,
) -> PageView:
    """The page, from what this controller knows now (pure)."""
    read_ok = cluster is not None and not cluster.error
    recorded = cluster.active_site if cluster is not None else None
    vantage = board.get("vantage") if isinstance(board.get("vantage"), Mapping) else {}
    active = recorded or str(vantage.get("active_site") or "") or topo.active_site
    probes = vantage.get("sites") if isinstance(vantage.get("sites"), Mapping) else {}
    health = board.get("health") if isinstance(board.get("health"), Mapping) else None
    sweep = sweep_of(health)
    health_at = (
        float(health["at"]) if health and isinstance(health.get("at"), int | float) else None
    )
    # The sweep comes every policy.health_every (the page's refresh while it is viewed).
    stale_after = max(
        60.0, _STALE_SWEEPS * topo.policy.probe_interval, 2 * topo.policy.health_every
    )
    stale = health_at is not None and now - health_at > stale_after
    controllers = cluster.controllers if cluster is not None else ()

    results = sweep.results if sweep is not None else ()
    sites = []
    for name, site in topo.sites.items():
        mine = [r for r in results if r.site == name]
        probe = probes.get(name) if isinstance(probes.get(name), Mapping) else None
        verdict, why = judge(mine, probe)
        role = "witness" if site.kind == "witness" else ("active" if name == active else "standby")
        sites.append(
            SiteRow(
                name,
                site.kind,
                role,
                verdict,
                why,
                _controller_of(name, controllers, read_ok),
                cells_of(mine),
            )
        )
    cluster_wide = [r for r in results if r.site is None]
    if cluster_wide:
        verdict, why = judge(cluster_wide, None)
        sites.append(SiteRow("cluster", "", "", verdict, why, "", cells_of(cluster_wide)))
    present = {r.system for r in results}
    systems = tuple(s for s in SYSTEMS if s in present) + tuple(sorted(present - set(SYSTEMS)))
    lag = lag_of(topo, active, sweep, health_at or now) if sweep is not None else None

    operation = None
    if cluster is not None and cluster.operation is not None:
        operation = operation_shown(cluster.operation)
    notes = []
    if cluster is None:
        notes.append("the cluster's state has not been read from ZooKeeper yet")
    elif cluster.error:
        held = (
            f": showing what it held {now - cluster.at:.0f} s ago"
            if cluster.operation is not None or cluster.history
            else ""
        )
        notes.append(f"ZooKeeper could not be read ({cluster.error}){held}")
    elif now - cluster.at > 30:
        notes.append(f"the cluster's state was read {now - cluster.at:.0f} s ago")
    if sweep is None:
        notes.append("no health sweep yet: health by system and replication lag appear with it")
    elif stale and health_at is not None:
        notes.append(f"the latest health sweep is {now - health_at:.0f} s old")
    if board.get("connected") is False:
        notes.append(f"the controller of {board.get('site')} has no ZooKeeper session")

    banner, headline, sentences = _banner(active, sites, operation, lag, cluster)
    limits = topo.policy.rpo_limits
    targets = topo.policy.drill_targets
    return PageView(
        cluster=topo.cluster,
        served_by=str(board.get("site") or ""),
        identity=str(board.get("identity") or ""),
        leader=bool(board.get("leader")),
        now=now,
        refresh_s=refresh_s,
        active_site=active,
        active_recorded=recorded is not None,
        banner=banner,
        headline=headline,
        sentences=sentences,
        decision=str(board.get("decision") or ""),
        sites=tuple(sites),
        systems=systems,
        health_at=health_at,
        health_stale=stale,
        lag=lag,
        rpo_limits=(
            ("volume mirrors", limits.volume),
            ("LDAP", limits.ldap),
            ("object store", limits.object_store),
        ),
        drill_targets=f"RTO {_seconds_text(targets.rto)}, RPO {_seconds_text(targets.rpo)}",
        ticket=cluster.ticket if cluster is not None else None,
        automatic=topo.policy.automatic_promotion,
        paused=cluster.paused if cluster is not None else None,
        operation=operation,
        history=history_shown(cluster.history) if cluster is not None else (),
        cluster_read_at=cluster.at if cluster is not None else None,
        notes=tuple(notes),
    )


def _banner(
    active: str,
    sites: Sequence[SiteRow],
    operation: OperationShown | None,
    lag: Lag | None,
    cluster: ClusterRead | None,
) -> tuple[str, str, tuple[str, ...]]:
    """The one-look summary: bad when a site is down or an operation failed, warn while
    an operation runs or something is degraded, else good."""
    sentences = []
    down = [s.name for s in sites if s.verdict == DOWN and s.kind]
    degraded = [s.name for s in sites if s.verdict == DEGRADED]
    if operation is not None and operation.in_progress:
        sentences.append(f"{operation.mode} {operation.route} in progress: {operation.current}.")
    for name in down:
        sentences.append(f"{name} is down.")
    if degraded:
        sentences.append(f"degraded: {', '.join(degraded)}.")
    if lag is not None and not lag.ready:
        sentences.append(lag.verdict)
    if cluster is not None and cluster.paused:
        sentences.append(f"automatic promotion is paused: {cluster.paused}.")
    failed = operation is not None and operation.in_progress and operation.failed_step
    if down or failed:
        kind = "bad"
    elif (operation is not None and operation.in_progress) or sentences:
        kind = "warn"
    else:
        kind = "good"
        sentences.append(f"{active} serves; every site answers as it should.")
    headline = f"{active} active"
    if operation is not None and operation.in_progress:
        headline += f" · {operation.mode} {operation.route} in progress"
    elif down:
        headline += f" · {', '.join(down)} down"
    return kind, headline, tuple(sentences)
