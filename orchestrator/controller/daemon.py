"""The controller daemon: a vantage thread that probes and publishes, and a leader loop
that, once per cycle and only while verified leader, gathers one snapshot, takes one
decision, logs its sentence and carries it out through the engine.

Two threads, not one, so that publishing this site's view never waits behind an
operation the leader is running (a failover takes many probe intervals).

A thread of its own evaluates, while leading, whether a move to the standby could run
right now (controller/evaluation.py), every `policy.evaluate_every` and when the
topology file changes; the result goes to /status, /metrics, ZooKeeper (for `sitectl
status`) and, when it changes, the `plan-not-ready` / `plan-ready` hooks.

A third thread renews the site ticket while this controller's site holds it
(controller/ticketing.py), four times per `fence_after`, and feeds the site's dead-man
agents after each renewal that succeeded and at no other time (`_ticket_loop`).

Two more feed /metrics on every controller (controller/monitor.py): the health sweep
every `policy.health_every`, and the operation records and drill reports.

One more, the request desk (controller/desk.py), takes operators' requests for
operations while this controller leads, and runs each it takes on a thread of its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from kazoo.client import KazooClient
from kazoo.exceptions import KazooException
from kazoo.recipe.watchers import DataWatch

from orchestrator.audit import beside, identity
from orchestrator.checks import Readiness, readiness
from orchestrator.config.model import Topology
from orchestrator.controller.canary import Canaries
from orchestrator.controller.decision import (
    Action,
    Decision,
    FailedAttempt,
    OperationView,
    ReadinessView,
    Snapshot,
    Timing,
    decide,
    down_by_quorum,
    failover_target,
)
from orchestrator.controller.desk import Commentary, RequestDesk
from orchestrator.controller.evaluation import Evaluate, PlanWatch
from orchestrator.controller.fence import LeaderFence
from orchestrator.controller.hooks import Hooks
from orchestrator.controller.http import Board, Metrics
from orchestrator.controller.leadership import Leadership
from orchestrator.controller.ledger import UNFINISHED
from orchestrator.controller.monitor import Monitor
from orchestrator.controller.ticketing import TicketKeeper
from orchestrator.controller.vantage import Freshness, Prober, Sweeper, application_sweep
from orchestrator.controller.zkstate import ControllerState, Published, VantageIdentities
from orchestrator.coordination.client import sitectl_id
from orchestrator.coordination.paths import ZkPaths
from orchestrator.coordination.store import ZkStore
from orchestrator.coordination.ticket import Ticket
from orchestrator.coordination.ticketstore import TicketStore
from orchestrator.deadman.feeder import Feeder
from orchestrator.engine.faults import Faults
from orchestrator.engine.records import OpStatus
from orchestrator.errors import Failed, LeaseLost, Locked, SitectlError
from orchestrator.evaluate.findings import Evaluation, changed
from orchestrator.notify.dispatch import Notifier
from orchestrator.notify.payload import plan_notice, split_brain_notice

if TYPE_CHECKING:
    from orchestrator.engine import operation as engine

log = logging.getLogger("sitectl.controller")

ReadinessFn = Callable[[Topology, str], Readiness]


def decisive(report: dict[str, Any] | None, needed: int) -> bool:
    """A vantage report in which some site has failed `needed` probes in a row: the one
    that may complete a quorum of vantage points, worth deciding on at once (pure)."""
    sites = (report or {}).get("sites") or {}
    return any(
        isinstance(view, dict) and int(view.get("streak") or 0) >= needed for view in sites.values()
    )


def timing_of(topo: Topology) -> Timing:
    p = topo.policy
    return Timing(p.probe_interval, p.consecutive_failures, p.automatic_promotion, p.block_period)


def probe_timeout(topo: Topology) -> float:
    # One probe interval, so a hung site costs one interval per probe, not more; but
    # never so short that a healthy round trip across sites looks like an outage.
    return max(0.5, min(topo.policy.probe_interval, 5.0))


def readiness_summary(verdict: Readiness) -> str:
    if not verdict.ready:
        return "; ".join(verdict.reasons)
    if not verdict.loss:
        return "no replicated data configured"
    labels = {"volume": "mirror lag", "ldap": "LDAP lag", "object_store": "object store lag"}
    return ", ".join(
        f"{labels.get(k, k)} {v:.0f} s" for k, v in verdict.loss.items() if v is not None
    )


class Controller:
    def __init__(
        self,
        topo: Topology,
        site: str,
        client: KazooClient,
        *,
        hooks: Hooks | None = None,
        sweeper: Sweeper = application_sweep,
        readiness_fn: ReadinessFn = readiness,
        canaries: bool = True,
        own_id: str | None = None,
        evaluate_fn: Evaluate | None = None,
        evaluations: bool = True,
        monitoring: bool = True,
    ) -> None:
        if site not in topo.sites:
            raise ValueError(f"--site {site}: no such site — use one of {', '.join(topo.sites)}")
        self.topo, self.site, self.client = topo, site, client
        self.paths = ZkPaths.for_cluster(topo.zookeeper.chroot, topo.cluster)
        self.store = ZkStore(client, self.paths)
        sitectl = sitectl_id(topo)
        self.state = ControllerState(
            client,
            self.paths,
            VantageIdentities(
                dict(topo.zookeeper.controller_ids),
                own=own_id,
                readers=(sitectl,) if sitectl else (),
            ),
        )
        self._untrusted_said: dict[str, str] = {}
        self.identifier = f"{site} {identity()}"
        self.leadership = Leadership(client, self.paths, self.identifier)
        self.timing = timing_of(topo)
        self.hooks = hooks or Hooks()
        # The topology's notification targets: told of a split brain here; an automatic
        # failover's events come from the engine, like every operation's.
        self.notifier = Notifier(
            topo.notifications, topo.base_dir, beside(topo.resolve(topo.local_state))
        )
        self._notified = 0  # controller notices sent (split-brain, plan): their seq
        self.metrics = Metrics(site)
        self.board = Board(site=site, identity=self.identifier, leader=False)
        self._prober = Prober(topo, site, sweeper)
        self._freshness = Freshness()
        self._readiness = readiness_fn
        self._stop = threading.Event()
        # Set when a vantage report shows a site down for the whole streak: the leader
        # decides then, not at its next tick (up to an interval later).
        self._wake = threading.Event()
        self._report_watches: dict[str, DataWatch] = {}  # per site, for good
        self._split_seen = False  # the latest probe found two sites serving
        self._active = topo.active_site  # last known; probing goes on without ZooKeeper
        self._last_probe = self._last_cycle = time.monotonic()
        self._busy = False  # running an operation: the leader loop is not stuck
        self._joined: int | None = None
        self._last_sentence = ""
        self._canaries = canaries
        self._verified = False  # the last cycle's verdict: only the leader writes canaries
        self._fence: LeaderFence | None = None  # the canaries' epoch (controller/fence.py)
        self._failed_attempt: FailedAttempt | None = None
        self._evaluations = evaluations
        # The health sweep and the records for /metrics (threads started by run()).
        self.monitor = Monitor(
            topo, self.store, self.metrics, lambda: self._active, board=self.board
        )
        self._monitoring = monitoring
        self.plans = PlanWatch(topo, evaluate_fn) if evaluate_fn else PlanWatch(topo)
        self.tickets = TicketKeeper(
            topo, site, TicketStore(client, self.paths), self.metrics, self.board
        )
        # The site's dead-man agents, fed after each renewal of the site's ticket.
        # Operators' requests, taken while this controller is the verified leader.
        self.desk = RequestDesk(
            topo,
            client,
            self.store,
            self.identifier,
            lambda: self._verified and self.leadership.verified(),
        )
        self._feeder = Feeder(topo, site) if topo.deadman and site in topo.datacenters() else None
        if self._feeder is not None:
            self.on_renewal.append(lambda _ticket: self._feed(holder=True))

    @property
    def on_renewal(self) -> list[Callable[[Ticket], None]]:
        """Called with the ticket after each successful renewal: feed a dead-man agent here."""
        return self.tickets.on_renewal

    def renew_ticket(self) -> bool:
        """Renew the site ticket if this site holds it; True when the renewal succeeded."""
        return self.tickets.cycle(self._active, self.leadership.connected)

    def _feed(self, holder: bool, fence: bool = False) -> None:
        if self._feeder is not None:
            self._feeder.feed(holder, fence)

    # ---- lifecycle -----------------------------------------------------------

    def run(self) -> None:
        vantage = threading.Thread(target=self._vantage_loop, name="vantage", daemon=True)
        vantage.start()
        if self._canaries:
            threading.Thread(target=self._canary_loop, name="canary", daemon=True).start()
        if self._evaluations:
            threading.Thread(target=self._evaluation_loop, name="evaluate", daemon=True).start()
        threading.Thread(target=self._ticket_loop, name="ticket", daemon=True).start()
        threading.Thread(
            target=self.desk.run, args=(self._stop,), name="requests", daemon=True
        ).start()
        if self._monitoring:
            for name, loop in (
                ("health sweep", self.monitor.sweep_loop),
                ("records", self.monitor.records_loop),
            ):
                threading.Thread(target=loop, args=(self._stop,), name=name, daemon=True).start()
        try:
            self._leader_loop()
        finally:
            self._stop.set()
            vantage.join(timeout=2 * probe_timeout(self.topo) + 1)
            self.leadership.resign()
            self.notifier.close()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.desk.wake()

    def health(self) -> tuple[bool, str]:
        now, limit = time.monotonic(), self.timing.stale_after + 2 * probe_timeout(self.topo)
        if now - self._last_probe > limit:
            return False, f"no probe for {now - self._last_probe:.0f} s"
        if not self._busy and now - self._last_cycle > limit:
            return False, f"no decision cycle for {now - self._last_cycle:.0f} s"
        return True, self._last_sentence or "starting"

    # ---- vantage point -------------------------------------------------------

    def _vantage_loop(self) -> None:
        interval = self.timing.probe_interval
        next_at = time.monotonic()
        said = ""
        while not self._stop.is_set():
            try:
                self._probe_once()
                said = ""
            except Exception as exc:  # one bad cycle must not end the vantage point
                sentence = f"this probe cycle failed ({type(exc).__name__}: {one_line(str(exc))})"
                if sentence != said:
                    log.warning("%s: probing again next cycle", sentence)
                    said = sentence
            next_at = max(next_at + interval, time.monotonic())
            self._stop.wait(next_at - time.monotonic())

    def _probe_once(self) -> None:
        if self.leadership.connected:
            # Unreadable: keep probing the last known active site.
            with contextlib.suppress(SitectlError):
                self._active = self._active_site()
        self.metrics.active(self.topo.datacenters(), self._active)
        report = self._prober.probe(self._active, probe_timeout(self.topo))
        self._last_probe = time.monotonic()
        if decisive(report.to_json(), self.timing.consecutive_failures):
            self._wake.set()
        self.metrics.observed(dict(report.sites), report.seconds)
        self._split_brain(self._prober.split_brains)
        self.board.update(vantage=report.to_json())
        if not self.leadership.connected:
            return  # nothing can be published; the leader counts us absent, as it should
        try:
            session = self.client.client_id[0] if self.client.client_id else None
            if self._joined != session and self.state.join(
                self.site, {"identity": self.identifier, "started": time.time()}
            ):
                self._joined = session
            if not self.state.publish(self.site, report.to_json()):
                log.warning(
                    "another live controller publishes for %s: not overwriting it", self.site
                )
        except SitectlError as exc:
            log.info("could not publish the vantage report: %s", exc)

    def _split_brain(self, findings: tuple[str, ...]) -> None:
        """Say once when this vantage point starts and stops seeing two sites serving;
        the `split-brain` hook is told on its own thread, so a slow hook delays no probe."""
        self.metrics.split_brain.set(1 if findings else 0)
        if bool(findings) == self._split_seen:
            return
        self._split_seen = bool(findings)
        if not findings:
            log.info("%s no longer sees two sites serving", self.site)
            return
        log.warning("%s sees two sites serving: %s", self.site, "; ".join(findings))
        payload = {"vantage": self.site, "active_site": self._active, "findings": list(findings)}
        threading.Thread(target=self.hooks.run, args=("split-brain", payload), daemon=True).start()
        self._notified += 1
        self.notifier.send(
            split_brain_notice(
                self.topo.cluster,
                seq=self._notified,
                at=time.time(),
                vantage=self.site,
                by=self.identifier,
                active_site=self._active,
                findings=tuple(findings),
            )
        )

    # ---- the dead-man agents ---------------------------------------------------

    def _ticket_loop(self) -> None:
        """Renew the site ticket four times per `fence_after` (at least every second),
        on a thread of its own: neither a slow probe nor a long operation may delay a
        renewal, since the site's dead-man agents fence it when renewals stop. A site
        confirmed not to hold the ticket tells its agents to stand down; a renewal that
        fails for want of a quorum tells them nothing, and that silence is what fences. A
        site that reads it lost the ticket to a failover has its agents fence it at once:
        a site coming back after a failover is fenced within a renewal interval."""
        fence_after = self.topo.fence_after
        every = min(1.0, fence_after / 4)
        renewed_at, failing = time.monotonic(), False
        while not self._stop.wait(every):
            if self.renew_ticket():
                if failing:
                    log.info(
                        "%s renewed its site ticket again after %.1f s without a renewal "
                        "(its agents fence after %g s)",
                        self.site,
                        time.monotonic() - renewed_at,
                        fence_after,
                    )
                renewed_at, failing = time.monotonic(), False
            else:
                failing = failing or self.tickets.held_here
                if self.tickets.lost_here:
                    self._feed(holder=False, fence=True)  # fence on return
                elif self.tickets.held_elsewhere:
                    self._feed(holder=False)
        if self._feeder is not None:
            self._feeder.close()

    # ---- canaries (leader only) ----------------------------------------------

    def _canary_loop(self) -> None:
        canaries = Canaries(self.topo)
        try:
            self._write_canaries(canaries)
        finally:
            canaries.close()

    def _write_canaries(self, canaries: Canaries) -> None:
        said: list[str] = []
        unfenced: list[str] = []
        while not self._stop.wait(canaries.tick):
            fence = self._term_fence() if self._verified else None
            if fence is None:
                continue  # a follower never writes
            if not self._busy:  # an operation moves the active site
                # Each canary stamps our epoch on its own entry or object first if needed.
                problems = canaries.write(self.topo, self._active, probe_timeout(self.topo), fence)
                if problems != said:
                    log.info("canaries: %s", "; ".join(problems) or "written again")
                    said = problems
                self.board.update(canary_problems=problems, canary_at=time.time())
            # Then everywhere else an older leader may still write (it may believe
            # another site active), even while an operation runs; after the canaries,
            # so that a dead site's timeouts never delay them.
            missing = fence.stamp_everywhere(self.topo, probe_timeout(self.topo))
            if missing != unfenced:
                log.info(
                    "epoch %d %s",
                    fence.epoch,
                    f"not stamped yet: {'; '.join(missing)}"
                    if missing
                    else "stamped on every canary entry and object",
                )
                unfenced = missing

    def _term_fence(self) -> LeaderFence | None:
        """This leadership term's fence; a new one for each new epoch."""
        epoch = self.leadership.epoch
        if epoch is None:
            return None
        if self._fence is None or self._fence.epoch != epoch:
            self._fence = LeaderFence(epoch)
        return self._fence

    # ---- plan evaluation (leader only) ----------------------------------------

    def _evaluation_loop(self) -> None:
        plans = self.plans
        while not self._stop.wait(plans.tick):
            if not self._verified:
                plans.stood_down()  # a follower never evaluates
                continue
            why = plans.due()
            if why is None or self._busy:  # an operation moves the active site
                continue
            before = plans.last
            log.info("evaluating a move from %s to the standby: %s", self._active, why)
            try:
                result = plans.evaluate_now(self._active)
            except Exception:  # the checks' own bug must not end the thread
                log.exception("the plan evaluation failed")
                continue
            if result is not None:
                self._evaluated(before, result)

    def _evaluated(self, before: Evaluation | None, result: Evaluation) -> None:
        log.info("%s", result.describe())
        self.board.update(evaluation=result.to_dict())
        self.metrics.evaluation(result)
        try:
            self.state.record_evaluation(result)
        except SitectlError as exc:
            log.info("the evaluation is not recorded for sitectl status: %s", exc)
        self._plan_event(before, result)

    def _plan_event(self, before: Evaluation | None, result: Evaluation) -> None:
        """Tell the hooks when a move to the standby turns impossible, or possible again:
        the one place the event fires (told on a thread of its own, never asked)."""
        event = changed(before, result)
        if event is None:
            return
        payload = {
            "to_site": result.to_site,
            "verdict": result.describe(),
            "at": result.at,
            "problems": [
                {"check": f.check, "subject": f.subject, "reason": f.reason}
                for f in result.problems
            ],
        }
        threading.Thread(target=self.hooks.run, args=(event, payload), daemon=True).start()
        self._notified += 1
        self.notifier.send(
            plan_notice(
                self.topo.cluster,
                event,
                seq=self._notified,
                at=result.at,
                by=self.identifier,
                to_site=result.to_site,
                verdict=result.describe(),
                problems=tuple(f"{f.check} {f.subject}: {f.reason}" for f in result.problems),
            )
        )

    # ---- leader --------------------------------------------------------------

    def _leader_loop(self) -> None:
        interval = self.timing.probe_interval
        next_at = time.monotonic()
        while not self._stop.is_set():
            # Contending blocks at most one interval: a follower's cycle is its wait.
            leading = self.leadership.contend(timeout=interval)
            if self._stop.is_set():
                break
            if leading:
                self._watch_reports()
            decision = self.cycle(leading)
            self._act(decision)
            self._last_cycle = time.monotonic()
            next_at = max(next_at + interval, time.monotonic())
            if self._wake.wait(max(0.0, next_at - time.monotonic())):
                # A decisive report: decide now, though at most four times an interval
                # (a site down for long keeps every report decisive).
                next_at = self._last_cycle + interval / 4
                self._stop.wait(max(0.0, next_at - time.monotonic()))
            self._wake.clear()

    def _watch_reports(self) -> None:
        """Be told when another vantage point publishes: one DataWatch per site for the
        controller's whole life, made on its first term. kazoo keeps each across
        reconnects and sets it again on every new session itself (its session listener
        reads the node again, with a watch), so one is enough; one per session, as this
        once did, left one more watcher and one more session listener per site after
        each session expiry, every one of them reading its node again at each reconnect."""
        for site in self.topo.sites:
            if site not in self._report_watches:
                watch = self._watch_report(site)
                if watch is None:
                    return  # the next cycle tries the rest
                self._report_watches[site] = watch

    def _watch_report(self, site: str) -> DataWatch | None:
        watch = DataWatch(self.client, f"{self.state.vantage_path}/{site}/report")
        try:
            watch(self._published)  # registers its session listener, then reads
        except KazooException as exc:
            log.info("cannot watch the vantage reports yet: %s", exc)
            # kazoo registered the listener before the read failed: unregister it, or
            # each failed attempt would leave one behind.
            self.client.remove_listener(watch._session_watcher)
            return None
        return watch

    def _published(self, data: bytes | None, _stat: object) -> bool:
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            if data and decisive(json.loads(data), self.timing.consecutive_failures):
                self._wake.set()
        return not self._stop.is_set()  # False: kazoo drops the watch

    def cycle(self, leading: bool) -> Decision:
        """One snapshot, one decision, one sentence."""
        verified = leading and self.leadership.verified()
        self._verified = verified
        self.metrics.leader.set(1 if verified else 0)
        self.metrics.connected.set(1 if self.leadership.connected else 0)
        if not verified:
            decision = decide(self._bare(), self.timing, time.time())
        else:
            try:
                snapshot = self.gather()
            except SitectlError as exc:
                decision = Decision(
                    Action.STAND_BY,
                    f"could not read the cluster state from ZooKeeper ({exc}): taking no decision",
                )
            except Exception as exc:  # data anyone could have written: never crash the loop
                decision = Decision(
                    Action.STAND_BY,
                    "could not make sense of the cluster state in ZooKeeper "
                    f"({type(exc).__name__}: {one_line(str(exc))}): taking no decision",
                )
            else:
                decision = decide(snapshot, self.timing, time.time())
        self._say(decision, verified)
        return decision

    def _bare(self) -> Snapshot:
        return Snapshot(
            connected=self.leadership.connected,
            leader=False,
            active_site=self._active,
            home_site=self.topo.active_site,
            datacenters=tuple(self.topo.datacenters()),
            vantage_sites=tuple(self.topo.sites),
        )

    def gather(self) -> Snapshot:
        snapshot = replace(
            self._bare(),
            leader=True,
            active_site=self._active_site(),
            views=self._freshness.views(self._trusted_reports()),
            paused=self.store.paused(),
            operation=self._current_operation(),
            lock_holders=tuple(self.store.lock_holders()),
            last_automatic=self.state.last_automatic(),
            acknowledged=self.state.acknowledged(),
            failed_attempt=self._failed_attempt,
        )
        self.metrics.fresh.set(
            sum(1 for v in snapshot.views if v.age is not None and v.age <= self.timing.stale_after)
        )
        self.metrics.operation.set(1 if snapshot.operation else 0)
        target = failover_target(snapshot)
        # The readiness gate runs sweeps of LDAP, mirrors and the object store: only
        # when its answer can change the decision, and still into this cycle's snapshot.
        if (
            target
            and snapshot.operation is None
            and snapshot.paused is None
            and self.timing.automatic_promotion
            and down_by_quorum(snapshot, self.timing)
        ):
            active_topo = self.topo.model_copy(update={"active_site": snapshot.active_site})
            verdict = self._readiness(active_topo, target)
            for kind, seconds in verdict.loss.items():
                if seconds is not None:
                    self.metrics.loss.labels(kind).set(seconds)
            snapshot = replace(
                snapshot, readiness=ReadinessView(verdict.ready, readiness_summary(verdict))
            )
        return snapshot

    def _trusted_reports(self) -> list[Published]:
        reports = self.state.vantage_reports()
        untrusted = self.state.untrusted
        for site, why in untrusted.items():
            if self._untrusted_said.get(site) != why:
                log.warning("the vantage report of %s is not counted: %s", site, why)
        self._untrusted_said = dict(untrusted)
        return reports

    def _active_site(self) -> str:
        recorded = self.store.active_site()
        if recorded is None:
            return self.topo.active_site
        if recorded not in self.topo.datacenters():
            raise Failed(
                f"{self.paths.active_site} names {recorded[:60]!r}, not a datacenter of the "
                "topology — make sure only sitectl may write there (zookeeper.auth)"
            )
        return recorded

    def _current_operation(self) -> OperationView | None:
        op_id = self.store.current_operation()
        if not op_id:
            return None
        op, _ = self.store.operation(op_id)
        if op.status.value not in UNFINISHED:
            return None
        return OperationView(
            op.id,
            op.mode,
            op.from_site,
            op.to_site,
            op.status.value,
            op.automatic,
            op.failed_step,
            requested=op.requested is not None,
        )

    def _say(self, decision: Decision, verified: bool) -> None:
        self.metrics.decisions.labels(decision.action.value).inc()
        self.board.update(
            leader=verified,
            action=decision.action.value,
            decision=decision.sentence,
            decided_at=time.time(),
            connected=self.leadership.connected,
        )
        # Every cycle decides; the log gets the sentence when it changes, so an outage
        # reads as a short story rather than one line per second.
        if decision.sentence != self._last_sentence:
            log.info("%s", decision.sentence)
            self._last_sentence = decision.sentence

    # ---- acting --------------------------------------------------------------

    def _act(self, decision: Decision) -> None:
        if decision.action not in (Action.FAILOVER, Action.RESUME):
            return
        # Re-verified against the quorum right before acting; the engine's lease then
        # fences every write it makes, so losing leadership after this point is safe.
        if not self.leadership.verified():
            self._tell("lost leadership before acting: doing nothing")
            return
        self._busy = True
        try:
            if decision.action is Action.FAILOVER and decision.target:
                self._failover(decision)
            elif decision.action is Action.RESUME and decision.operation:
                self._resume(decision.operation)
        finally:
            self._busy = False

    def _session(self) -> engine.Session:
        # The engine (ansible-runner, the plan builder, every step) is imported when an
        # operation starts: an idle controller never needs it, and it is megabytes.
        from orchestrator.engine import operation as engine

        return engine.Session(self.topo, self.client, self.store)

    def _failover(self, decision: Decision) -> None:
        target = decision.target
        assert target is not None
        base = {"from_site": self._active, "to_site": target, "sentence": decision.sentence}
        veto = self.hooks.run("pre-failover", base)
        if not veto.ok:
            self._could_not_start(veto.sentence())
            self._tell(f"{veto.sentence()}: not failing over to {target}")
            return
        from orchestrator.engine import operation as engine

        s = self._session()
        try:
            plan = engine.plan_operation(s, "failover", target, trigger="automatic")
            previous = self.state.last_automatic()
            self.state.record_automatic(target, time.time())
            try:
                # Faults from the environment, as `sitectl failover` takes them: drills
                # and tests kill the leader mid-operation exactly where they choose.
                outcome = engine.start_operation(
                    s, plan, reason=decision.sentence, automatic=True, faults=Faults.from_env()
                )
            except (Locked, engine.OperationPending) as exc:
                self.state.forget_automatic(previous)
                self._could_not_start(str(exc))
                self._tell(f"did not start the failover to {target}: {exc}")
                return
        except LeaseLost as exc:
            self._tell(f"stopped the failover to {target}: {exc}; the next leader resumes it")
            return
        except SitectlError as exc:
            self._could_not_start(str(exc))
            self._tell(f"the failover to {target} could not start: {exc}")
            self.hooks.run("failover-failed", {**base, "error": str(exc)})
            return
        self._failed_attempt = None
        self._finished(outcome, base)

    def _could_not_start(self, reason: str) -> None:
        self._failed_attempt = FailedAttempt(time.time(), reason)

    def _resume(self, op_id: str) -> None:
        from orchestrator.engine import operation as engine

        try:
            # Whoever follows the operation (`sitectl attach`) reads this run's sentences.
            with Commentary(self.desk.requests).attached() as commentary:
                commentary.operation(op_id)
                outcome = engine.resume_operation(self._session(), op_id, faults=Faults.from_env())
        except LeaseLost as exc:
            self._tell(f"stopped resuming {op_id}: {exc}; the next leader resumes it")
            return
        except SitectlError as exc:
            self._tell(f"could not resume {op_id}: {exc}")
            return
        if outcome.op.requested is not None:
            self.desk.close_resumed(outcome.op)
            where = f" at {outcome.op.failed_step}" if outcome.op.failed_step else ""
            self._tell(
                f"{outcome.op.mode} {op_id}, asked for by {outcome.op.by}, resumed and "
                f"{outcome.op.status.value}{where}: {outcome.op.message}"
            )
            return
        self._finished(
            outcome,
            {
                "from_site": outcome.op.from_site,
                "to_site": outcome.op.to_site,
                "sentence": outcome.op.reason,
            },
        )

    def _finished(self, outcome: engine.Outcome, base: dict[str, Any]) -> None:
        op = outcome.op
        payload = {**base, "operation": op.id, "status": op.status.value}
        if op.status is OpStatus.SUCCEEDED:
            self._tell(f"automatic failover {op.id} succeeded: {op.to_site} is active")
            self.hooks.run("post-failover", payload)
        else:
            where = f" at {op.failed_step}" if op.failed_step else ""
            self._tell(f"automatic failover {op.id} ended {op.status.value}{where}: {op.message}")
            self.hooks.run("failover-failed", payload)

    def _tell(self, sentence: str) -> None:
        log.info("%s", sentence)
        self.board.update(last_action=sentence, last_action_at=time.time())


def one_line(text: str, limit: int = 200) -> str:
    """`text` on one line, at most `limit` characters: a log sentence, whatever it holds."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
