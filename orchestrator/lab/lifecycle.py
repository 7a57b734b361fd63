"""Bring the lab up, take it down, inject and heal faults.

Every operation is driven by the recorded state (`state.py`), never by process names,
so it tolerates a crash, a half-finished `up` and pieces that are already gone.
"""

from __future__ import annotations

import shutil
import signal
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import SitectlError
from orchestrator.exitcodes import ExitCode
from orchestrator.lab import (
    components,
    controllers,
    deadman,
    hosts,
    layout,
    mail,
    netns,
    prereqs,
    procs,
    s3,
    shape,
    startgate,
    topology,
    volumes,
    wan,
)
from orchestrator.lab import state as lab_state
from orchestrator.lab.credentials import ensure_ca
from orchestrator.lab.links import existing_lab, require_lab, site_name
from orchestrator.lab.procs import ProcState
from orchestrator.lab.readiness import READY_TIMEOUT_S, LabError, wait_components
from orchestrator.lab.state import Component, LabState


@dataclass(frozen=True)
class UpResult:
    state_dir: Path
    changed: bool  # False: the lab was already fully up and nothing was touched
    started: list[str]
    seconds: float


def _any_alive(state: LabState) -> bool:
    return any(procs.state_of(c) is not ProcState.DOWN for c in state.components.values())


def _check_not_running_elsewhere(root: Path) -> None:
    other = lab_state.read_marker()
    if other is None or other == root:
        return
    if other.exists() and _any_alive(lab_state.load(other)):
        raise LabError(
            f"a lab is already running from {other}: run `sitectl lab down --state-dir {other}` "
            "first, or start this one from a network namespace of its own (two labs in one "
            "namespace would fight over the ops network)",
            ExitCode.LOCKED,
        )


def _check_reachable(root: Path) -> None:
    """Postfix, Dovecot and the mail uid run as other users: they must reach the state dir."""
    for directory in [root, *root.parents]:
        if directory.exists() and not directory.stat().st_mode & stat.S_IXOTH:
            raise LabError(
                f"{directory} is not searchable by other users (mode "
                f"{stat.S_IMODE(directory.stat().st_mode):04o}), so Postfix and Dovecot could "
                f"not reach the lab's files: `chmod o+x {directory}` or pick another --state-dir",
                ExitCode.BAD_INPUT,
            )


def _fully_up(state: LabState) -> bool:
    wanted = [c for c in state.components.values() if c.wanted]
    return (
        state.complete and bool(wanted) and all(procs.state_of(c) is ProcState.UP for c in wanted)
    )


def _check_network(root: Path) -> None:
    try:
        netns.check_free(root)
    except netns.NetworkInUse as exc:
        raise LabError(
            f"cannot make the lab's networks: {exc} (another lab? `sitectl lab down` it, "
            "or run this one in a network namespace of its own)"
        ) from exc


def _start(state: LabState, comps: list[Component]) -> None:
    for comp in comps:
        procs.spawn(comp)
        # Recorded at once: if we crash while waiting, `down` still finds this PID.
        state.save()


def _shape(existing: LabState, wanted: str | None) -> str:
    """The shape to bring up: the one a lab made here before was (its data and configs
    are of that shape), else `wanted`, else `single`."""
    if wanted is not None:
        try:
            shape.check(wanted)
        except ValueError as exc:
            raise LabError(str(exc), ExitCode.BAD_INPUT) from exc
    if not existing.components:
        return wanted or shape.SINGLE
    made = shape.recorded(existing.resources)
    if wanted is not None and wanted != made:
        raise LabError(
            f"the lab in {existing.root} was made {made}, not {wanted}: `sitectl lab down "
            f"--purge --state-dir {existing.root}` first, or pick another --state-dir",
            ExitCode.BAD_INPUT,
        )
    return made


def up(root: Path, shape_name: str | None = None) -> UpResult:
    """Start (or complete) the lab in `root`, of shape `shape_name` (see lab/shape.py)."""
    began = time.monotonic()
    root = root.absolute()
    try:
        programs = prereqs.resolve()
    except prereqs.MissingPrerequisites as exc:
        raise LabError(str(exc), ExitCode.BAD_INPUT) from exc
    with lab_state.machine_lock():
        _check_not_running_elsewhere(root)
        _check_reachable(root)
        existing = lab_state.load(root)
        chosen = _shape(existing, shape_name)
        if _fully_up(existing):
            return UpResult(root, changed=False, started=[], seconds=time.monotonic() - began)
        fresh = not _any_alive(existing)
        if fresh:
            # Checked before anything is written or started: a busy network leaves nothing.
            _check_network(root)
        with lab_state.locked(root) as state:
            # Recorded before anything is made: addresses, volumes and servers follow it.
            state.resources["shape"] = chosen
            started = _converge_or_roll_back(state, programs, fresh)
    return UpResult(root, changed=True, started=started, seconds=time.monotonic() - began)


def _converge_or_roll_back(state: LabState, programs: dict[str, str], fresh: bool) -> list[str]:
    try:
        return _converge(state, programs, fresh)
    except BaseException as exc:
        rollback = ""
        if fresh:
            try:
                _teardown(state)  # nothing half-started left behind
            except LabError as incomplete:
                rollback = f"; rollback: {incomplete}"
        if isinstance(exc, LabError):
            raise LabError(f"{exc}{rollback}", exc.code) from exc
        if isinstance(exc, Exception):
            raise LabError(f"lab up failed: {exc}{rollback}") from exc
        raise


def _converge(state: LabState, programs: dict[str, str], fresh: bool) -> list[str]:
    deadline = time.monotonic() + READY_TIMEOUT_S
    lab_state.write_marker(state.root)
    state.complete = False
    try:
        netns.create(state)
    except netns.NetworkError as exc:
        raise LabError(f"cannot make the lab's networks: {exc}") from exc
    ensure_ca(state.pki, programs["openssl"])
    for prepare in components.PREPARERS:
        for comp in prepare(state, programs):
            components.place(state, comp)
            old = state.components.get(comp.name)
            if old is not None:
                # Keep what is live: the running process and whether it should run.
                comp.pid, comp.start_time, comp.wanted = old.pid, old.start_time, old.wanted
            state.components[comp.name] = comp
    volumes.clear_array_faults(state)  # every site comes back, its array with it
    if fresh:
        volumes.create(state)
        components.prepare_mailstore(state, volumes.writable_site(state))
    state.save()

    to_start = [
        c for c in state.components.values() if c.wanted and procs.state_of(c) is ProcState.DOWN
    ]
    procs.signal_groups(
        [
            c
            for c in state.components.values()
            if c.wanted and procs.state_of(c) is ProcState.PAUSED
        ],
        signal.SIGCONT,
    )
    _start(state, to_start)
    wait_components(state, [c for c in state.components.values() if c.wanted], deadline)
    _restore_replication(state, to_start)
    volumes.mark_cuts(state, netns.cuts(state))
    hosts.write(state)
    topology.write(state)
    state.complete = True
    return [c.name for c in to_start]


def _stop_all(comps: list[Component]) -> None:
    if comps:
        with ThreadPoolExecutor(max_workers=len(comps)) as pool:
            list(pool.map(procs.stop, comps))


def _teardown(state: LabState) -> None:
    """Stop, unmount, detach, remove the networks: every step runs even if one fails."""
    hosts.remove_connections(state.root)
    _stop_all(list(state.components.values()))
    problems = []
    try:
        volumes.destroy(state)
    except SitectlError as exc:
        # Typically a busy mount (a shell inside the volume): say so, finish the rest.
        problems.append(f"volumes: {exc}")
    problems += netns.destroy(state)
    state.complete = False
    if problems:
        raise LabError(f"teardown incomplete, run `lab down` again: {'; '.join(problems)}")
    lab_state.clear_marker(state.root)


def down(root: Path, purge: bool = False) -> None:
    root = root.absolute()
    with lab_state.machine_lock():
        if root.exists():
            with lab_state.locked(root) as state:
                _teardown(state)
        else:
            lab_state.clear_marker(root)
    if purge and root.exists():
        shutil.rmtree(root)


@dataclass(frozen=True)
class ComponentStatus:
    site: str
    component: str
    address: str
    pid: int | None
    state: str
    wanted: bool
    kind: str


def status(root: Path) -> list[ComponentStatus]:
    state = lab_state.load(existing_lab(root))
    rows = []
    for comp in state.components.values():
        proc_state = procs.state_of(comp)
        pid = comp.pid if proc_state is not ProcState.DOWN else None
        rows.append(
            ComponentStatus(
                comp.site, comp.name, comp.address, pid, proc_state.value, comp.wanted, comp.kind
            )
        )
    return rows


def active_site(root: Path) -> str:
    """The site the lab serves from now: the writable side of the mail volume's mirror,
    which a failover moves (the application follows it)."""
    state = lab_state.load(existing_lab(root))
    if not volumes.mirror_config(state).state_file.exists():
        return layout.ACTIVE_SITE  # a half-started up: nothing mirrored or moved yet
    try:
        return volumes.writable_site(state)
    except SitectlError as exc:
        raise LabError(f"cannot tell the active site: {exc}") from exc


def kill_site(root: Path, site: str) -> list[str]:
    """SIGKILL every process of `site`; they stay wanted, so heal-site restarts them."""
    site = site_name(site)
    with lab_state.locked(existing_lab(root)) as state:
        require_lab(state)
        volumes.mark_array_down(state, site, "killed")
        hit = procs.signal_groups(state.of_site(site), signal.SIGKILL)
        # Signals are delivered asynchronously: return only once the site is really dead,
        # so a drill's next step observes the fault, not a race with it.
        deadline = time.monotonic() + procs.STOP_GRACE_S
        for comp in hit:
            procs.wait_gone(comp, deadline)
        return [c.name for c in hit]


def pause_site(root: Path, site: str) -> list[str]:
    """SIGSTOP every process of `site`: a hung site whose sockets still accept TCP."""
    site = site_name(site)
    with lab_state.locked(existing_lab(root)) as state:
        require_lab(state)
        volumes.mark_array_down(state, site, "paused")
        hit = procs.signal_groups(state.of_site(site), signal.SIGSTOP)
        deadline = time.monotonic() + procs.STOP_GRACE_S
        for comp in hit:
            procs.wait_stopped(comp, deadline)
        return [c.name for c in hit]


def heal_site(root: Path, site: str) -> list[str]:
    """SIGCONT what is paused, restart (same argv) what was killed; wait until ready.
    The last entry says so when the start gate kept the application down."""
    site = site_name(site)
    with lab_state.locked(existing_lab(root)) as state:
        require_lab(state)
        volumes.mark_array_up(state, site)
        healed = []
        # A hung site that comes back resumes everything it ran, as a real one would: its
        # old application too, which a reprotect then stops (a stop that came while it
        # hung takes effect now). Left stopped, it would hold its ports and never answer.
        paused = [c for c in state.of_site(site) if procs.state_of(c) is ProcState.PAUSED]
        healed += [c.name for c in procs.signal_groups(paused, signal.SIGCONT)]
        # What was killed comes back as services enabled at boot would, the application
        # only through its start gate: a site that lost a failover must not serve, and it
        # is sitectl's ticket that says so (lab/startgate.py), not the lab.
        comps = [c for c in state.of_site(site) if c.wanted and c.kind not in mail.KINDS]
        kept_down = ""
        app = [c for c in state.of_site(site) if c.wanted and c.kind in mail.KINDS]
        if app and any(procs.state_of(c) is ProcState.DOWN for c in app):
            refused = startgate.refused(state.root, site)
            if refused is None:
                comps += app
            else:
                kept_down = f"(the application stays down: {refused})"
        for comp in comps:
            if comp.name not in healed and procs.restart_if_down(comp):
                state.save()
                healed.append(comp.name)
        reachable = _reachable_from_ops(state, comps)
        wait_components(state, reachable, time.monotonic() + READY_TIMEOUT_S)
        restarted = [c for c in reachable if c.name in healed and c.kind == "s3store"]
        _restore_replication(state, restarted)
        return healed + ([kept_down] if kept_down else [])


def _reachable_from_ops(state: LabState, comps: list[Component]) -> list[Component]:
    """Those of `comps` that `lab` (in ops) can probe: a site whose link to ops is cut
    either way cannot be, and what is behind the cut is left to come up on its own, as
    it would in a real partition."""
    cuts = netns.cuts(state)
    return [c for c in comps if c.netns is None or not wan.link_cut(cuts, layout.OPS, c.site)]


def _restore_replication(state: LabState, started: list[Component]) -> None:
    """Put the replication rule back on an S3 endpoint that (re)started empty.

    The lab's S3 keeps everything in memory, so a restart loses the bucket's replication
    configuration (and objects). Replication runs from the active site, the one whose
    volume is writable, so that is where the rule goes, whichever direction it had.
    """
    active = volumes.writable_site(state)
    for comp in started:
        if comp.kind == "s3store" and comp.site == active:
            (peer,) = (site for site in layout.DATACENTERS if site != active)
            s3.replicate(state, active, peer)


def _of_kind(state: LabState, kind: str) -> list[Component]:
    return [c for c in state.components.values() if c.kind == kind]


def controllers_up(
    root: Path, topology: Path | None = None, hooks: tuple[str, ...] = ()
) -> list[str]:
    """Start every datacenter's dead-man agent, then every site's controller on
    `topology` (default: the lab's) with `hooks`, restarting one that runs otherwise,
    and wait until each serves."""
    if topology is not None and not topology.is_file():
        raise LabError(f"--topology {topology}: no such file", ExitCode.BAD_INPUT)
    with lab_state.locked(existing_lab(root)) as state:
        agents, comps = _of_kind(state, deadman.KIND), _of_kind(state, controllers.KIND)
        started = []
        for comp in [*agents, *comps]:
            comp.wanted = True
            if comp.kind == controllers.KIND:
                wanted_argv = controllers.argv(state, comp.site, topology, hooks)
                if comp.argv != wanted_argv:
                    procs.stop(comp)
                    comp.argv = wanted_argv
            if procs.restart_if_down(comp):
                state.save()
                started.append(comp.name)
        wait_components(
            state,
            [*agents, *_reachable_from_ops(state, comps)],
            time.monotonic() + READY_TIMEOUT_S,
        )
        return started


def controllers_down(root: Path) -> list[str]:
    """Stop the dead-man agents (forgetting what they were fed, so none fences a site
    when they start again), then every controller, and keep them stopped."""
    with lab_state.locked(existing_lab(root)) as state:
        agents, comps = _of_kind(state, deadman.KIND), _of_kind(state, controllers.KIND)
        stopped = [c.name for c in [*agents, *comps] if procs.state_of(c) is not ProcState.DOWN]
        for comp in [*agents, *comps]:
            comp.wanted = False
        _stop_all(agents)
        for agent in agents:
            deadman.forget(state, agent.site)
        _stop_all(comps)
        return stopped


def controllers_status(root: Path) -> list[ComponentStatus]:
    kinds = ("-" + controllers.KIND, "-" + deadman.KIND)
    return [row for row in status(root) if row.component.endswith(kinds)]
