"""Process supervision by PID: start detached, inspect, signal, stop.

Every server runs in its own session (setsid), so its PID is also its process-group id
and a signal to the group reaches the workers it forked (Postfix's and Dovecot's
children) too. A PID is only trusted together with the kernel start time recorded when
we started it: after a crash and a reboot of the lab, the same PID may belong to
someone else, and we must never signal that process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from enum import StrEnum
from pathlib import Path

from orchestrator.lab.netns import enter_namespace
from orchestrator.lab.state import Component

STOP_GRACE_S = 5.0  # every lab server stops on SIGTERM within ~2 s (lab notes)


class ProcState(StrEnum):
    UP = "up"
    DOWN = "down"
    PAUSED = "paused"


def _stat(pid: int) -> tuple[str, int] | None:
    """(state letter, start time) of `pid` from /proc, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _reap(pid: int) -> None:
    # Only the parent can reap; for a process we did not fork this is a no-op.
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def state_of(comp: Component) -> ProcState:
    if comp.pid is None:
        return ProcState.DOWN
    _reap(comp.pid)
    stat = _stat(comp.pid)
    if stat is None or stat[1] != comp.start_time or stat[0] in ("Z", "X"):
        return ProcState.DOWN
    return ProcState.PAUSED if stat[0] in ("T", "t") else ProcState.UP


def spawn(comp: Component) -> None:
    """Start `comp` detached in its own session; record its pid and start time on it."""
    Path(comp.log).parent.mkdir(parents=True, exist_ok=True)
    for stale in comp.stale_files:  # only ever called for a component that is down
        Path(stale).unlink(missing_ok=True)
    env = {**os.environ, **comp.env}
    # nsenter execs the server in place: its PID, start time and command line are the
    # server's own, which is what state_of, recover and stop go by.
    argv = comp.argv if comp.netns is None else [*enter_namespace(comp.netns), *comp.argv]
    with open(comp.log, "ab") as log:
        proc = subprocess.Popen(
            argv,
            cwd=comp.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    stat = _stat(proc.pid)
    comp.pid = proc.pid
    comp.start_time = stat[1] if stat else None


def restart_if_down(comp: Component) -> bool:
    """Start `comp` again if it is down (reaping any worker its dead leader left behind);
    True if it was started. The caller records the new PID (`state.save()`) at once."""
    if state_of(comp) is not ProcState.DOWN:
        return False
    stop(comp)
    spawn(comp)
    return True


def adopt(comp: Component) -> None:
    """Track the daemon named by `comp.pid_file` instead of its launcher, once it exists.

    Only a live process started no earlier than the launcher is adopted, so a stale pid
    file from a previous run can never point us at an unrelated process.
    """
    if not comp.pid_file or comp.start_time is None:
        return
    try:
        pid = int(Path(comp.pid_file).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    stat = _stat(pid)
    if pid != comp.pid and stat and stat[1] >= comp.start_time and stat[0] not in ("Z", "X"):
        comp.pid, comp.start_time = pid, stat[1]


def recover(comp: Component) -> None:
    """Find the running process of a component whose PID was never recorded.

    Only possible if the `up` that started it was killed between the fork and the save
    of its PID. Matched strictly: the exact command line (it names this lab's config
    files), or the component's pid file naming a process whose working directory is
    inside the component's own directory (Postfix's master runs in its queue dir).
    """
    if comp.pid is not None:
        return
    wanted = ("\0".join(comp.argv) + "\0").encode()
    candidates = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes() == wanted:
                    candidates.append(int(entry.name))
            except OSError:
                continue
    if comp.pid_file:
        try:
            pid = int(Path(comp.pid_file).read_text().split()[0])
            if Path(f"/proc/{pid}/cwd").resolve().is_relative_to(comp.cwd):
                candidates.append(pid)
        except (OSError, ValueError, IndexError):
            pass
    for pid in candidates:
        stat = _stat(pid)
        if stat and stat[0] not in ("Z", "X"):
            comp.pid, comp.start_time = pid, stat[1]
            return


def signal_group(comp: Component, sig: signal.Signals) -> bool:
    """Send `sig` to the component's process group; False if it was not running."""
    return bool(signal_groups([comp], sig))


def signal_groups(comps: list[Component], sig: signal.Signals) -> list[Component]:
    """Send `sig` to each running component's process group; those that were running.

    One pass over /proc for all of them: a site's fifteen groups hung one scan at a time
    took seconds on a busy machine, and a flap or a pause must hit a site at once."""
    running = [c for c in comps if c.pid is not None and state_of(c) is not ProcState.DOWN]
    # Signal members one by one rather than killpg: a zombie leader keeps the group id
    # but we only want to reach live processes that are really ours.
    members = _members_of(running)
    for comp in running:
        _signal(members[comp.name], sig)
    return running


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def group_members(comp: Component) -> list[int]:
    """Live (non-zombie) PIDs in the component's process group.

    Only processes started no earlier than the recorded leader count: if the leader's
    PID was reused by an unrelated session leader, its group is not ours.
    """
    return _members_of([comp])[comp.name]


def _members_of(comps: list[Component]) -> dict[str, list[int]]:
    """group_members of each of `comps`, by name, from one scan of /proc."""
    groups = {c.pid: c for c in comps if c.pid is not None and c.start_time is not None}
    members: dict[str, list[int]] = {c.name: [] for c in comps}
    if not groups:
        return members
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        state, pgrp, start = fields[0], int(fields[2]), int(fields[19])
        comp = groups.get(pgrp)
        if comp is not None and start >= (comp.start_time or 0) and state not in ("Z", "X"):
            members[comp.name].append(int(entry.name))
    return members


def wait_gone(comp: Component, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if state_of(comp) is ProcState.DOWN and not group_members(comp):
            return True
        time.sleep(0.05)
    return False


def _member_state(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[0] if stat else None


def wait_stopped(comp: Component, deadline: float) -> bool:
    """Wait until every live member of the group is in state T (SIGSTOP is asynchronous)."""
    while time.monotonic() < deadline:
        states = {_member_state(pid) for pid in group_members(comp)}
        if states <= {"T", "t", None}:
            return True
        time.sleep(0.02)
    return False


def stop(comp: Component, grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM the group, SIGKILL it after `grace_s`; tolerate an already-dead process."""
    recover(comp)  # an `up` killed right after a fork never recorded the PID
    if comp.pid is None:
        return
    adopt(comp)  # a crash may have come between the launcher's start and its adoption
    if state_of(comp) is not ProcState.DOWN:
        # A stopped process cannot act on SIGTERM until it is continued.
        signal_group(comp, signal.SIGCONT)
        signal_group(comp, signal.SIGTERM)
        if not wait_gone(comp, time.monotonic() + grace_s):
            signal_group(comp, signal.SIGKILL)
            wait_gone(comp, time.monotonic() + grace_s)
    else:
        # The leader died (e.g. SIGKILLed) but workers of its group may live on.
        _signal(group_members(comp), signal.SIGKILL)
    comp.pid = None
    comp.start_time = None
