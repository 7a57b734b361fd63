"""Start, stop and inspect a site's mail application (Postfix + Dovecot), by PID.

What the project's playbooks (and the engine, in-process) call to disable or enable the
application on a site:

    python -m orchestrator.lab.app start  --site dc2 --state-dir DIR   # waits until ready
    python -m orchestrator.lab.app stop   --site dc1 --state-dir DIR
    python -m orchestrator.lab.app status --site dc1 --state-dir DIR   # prints up/down/paused
    … [--role mta|mailbox]   # only Postfix (mta) or only Dovecot (mailbox); default both
    … [--server mailbox1]    # a wide lab: only that mailbox server's Dovecot

--state-dir defaults to $SITECTL_LAB_DIR, then ./.lab. Start and stop are idempotent and
record the choice (`wanted`), so `lab up` and `heal-site` keep a stopped application
stopped. Exit status: 0 done, 1 failed, 2 bad input (unknown site, no lab).
Starting does not mount anything: the site's volume must already be mounted writable
(the mirror's break/mount step comes first in a failover).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from orchestrator.exitcodes import ExitCode
from orchestrator.lab import layout, mail, procs
from orchestrator.lab import state as lab_state
from orchestrator.lab.procs import ProcState
from orchestrator.lab.readiness import READY_TIMEOUT_S, LabError, wait_components
from orchestrator.lab.state import Component, LabState

ROLE_KINDS = {"mta": ("postfix",), "mailbox": ("dovecot",), None: mail.KINDS}


def _app_components(
    state: LabState, site: str, role: str | None = None, server: str | None = None
) -> list[Component]:
    try:
        layout.check_site(site)
    except ValueError as exc:
        raise LabError(str(exc), ExitCode.BAD_INPUT) from exc
    if role not in ROLE_KINDS:
        raise LabError(f"unknown role {role!r}: use mta or mailbox", ExitCode.BAD_INPUT)
    comps = [c for c in state.of_site(site) if c.kind in ROLE_KINDS[role]]
    if server is not None:
        # Each wide mailbox server is a host of its own: its stop or start is its alone.
        comps = [c for c in comps if c.name.startswith(f"{site}-{server}-")]
    if not comps:
        raise LabError(
            f"no mail application for {site} in {state.root} (is the lab up? the "
            f"application runs in {', '.join(layout.DATACENTERS)})",
            ExitCode.BAD_INPUT,
        )
    return comps


def start(root: Path, site: str, role: str | None = None, server: str | None = None) -> list[str]:
    """Start the site's application (if not running) and wait until it serves."""
    with lab_state.locked(root) as state:
        comps = _app_components(state, site, role, server)
        started = []
        for comp in comps:
            comp.wanted = True
            if procs.restart_if_down(comp):
                state.save()
                started.append(comp.name)
        wait_components(state, comps, time.monotonic() + READY_TIMEOUT_S)
        return started


def stop(root: Path, site: str, role: str | None = None, server: str | None = None) -> list[str]:
    """Stop the site's application (SIGTERM, then SIGKILL after a bound) and keep it down."""
    with lab_state.locked(root) as state:
        comps = _app_components(state, site, role, server)
        stopped = []
        for comp in comps:
            comp.wanted = False
            if procs.state_of(comp) is not ProcState.DOWN:
                stopped.append(comp.name)
            procs.stop(comp)
        return stopped


def status(root: Path, site: str, role: str | None = None, server: str | None = None) -> ProcState:
    """up only if every part is up; paused if any is paused; down otherwise."""
    comps = _app_components(lab_state.load(root), site, role, server)
    states = {procs.state_of(c) for c in comps}
    if states == {ProcState.UP}:
        return ProcState.UP
    return ProcState.PAUSED if ProcState.PAUSED in states else ProcState.DOWN


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.lab.app", description="The lab's mail application."
    )
    parser.add_argument("action", choices=("start", "stop", "status"))
    parser.add_argument("--site", required=True, help="dc1 or dc2")
    parser.add_argument("--role", choices=("mta", "mailbox"), default=None)
    parser.add_argument("--server", default=None, help="a wide lab's mailbox server")
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    root = (args.state_dir or lab_state.default_state_dir()).absolute()
    try:
        if args.action == "status":
            print(status(root, args.site, args.role, args.server).value)
        elif args.action == "start":
            names = start(root, args.site, args.role, args.server)
            print(f"{args.site}: application up (started: {', '.join(names) or 'nothing'})")
        else:
            names = stop(root, args.site, args.role, args.server)
            print(f"{args.site}: application down (stopped: {', '.join(names) or 'nothing'})")
    except LabError as exc:
        print(f"lab app: {exc}", file=sys.stderr)
        return int(exc.code)
    return 0


if __name__ == "__main__":
    sys.exit(main())
