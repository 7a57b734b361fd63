"""Waiting until lab components serve: each kind probed by a real client, concurrently.

Apart from `lifecycle`, and importing a kind's module only when one of its components is
probed, so that `python -m orchestrator.lab.app` (run by a playbook for every start and
stop of the application) does not pay ~0.4 s of boto3, ldap3 and pydantic imports it
never uses.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from orchestrator.exitcodes import ExitCode
from orchestrator.lab import procs
from orchestrator.lab.probes import NotReady, wait_until
from orchestrator.lab.procs import ProcState
from orchestrator.lab.state import Component, LabState

READY_TIMEOUT_S = 60.0


class LabError(Exception):
    """A lab command cannot do what was asked; the message is the one line to print."""

    def __init__(self, message: str, code: ExitCode = ExitCode.OPERATION_FAILED) -> None:
        super().__init__(message)
        self.code = code


def probe(comp: Component, state: LabState) -> bool:
    """One readiness check of `comp` by a real client; exceptions mean "not yet"."""
    # Imported here, per kind: see the module's docstring.
    if comp.kind == "zookeeper":
        from orchestrator.lab import zookeeper

        return zookeeper.ready(comp)
    if comp.kind == "named":
        from orchestrator.lab import bind

        return bind.ready(comp)
    if comp.kind == "slapd":
        from orchestrator.lab import ldap

        return ldap.ready(comp, state)
    if comp.kind == "s3store":
        from orchestrator.lab import s3

        return s3.ready(comp)
    if comp.kind == "controller":
        from orchestrator.lab import controllers

        return controllers.ready(comp, state)
    if comp.kind == "deadman":
        from orchestrator.lab import deadman

        return deadman.ready(comp)
    if comp.kind == "sshd":
        from orchestrator.lab import sshd

        return sshd.ready(comp)
    if comp.kind == "mirrord":
        from orchestrator.lab import volumes

        return volumes.ready(state)
    from orchestrator.lab import mail

    if comp.kind in mail.KINDS:
        return mail.ready(comp, state)
    raise ValueError(f"no probe for component kind {comp.kind!r}")


def wait_components(state: LabState, comps: list[Component], deadline: float) -> None:
    """Probe every component concurrently; raise LabError naming the first that failed."""

    def one(comp: Component) -> str | None:
        try:
            wait_until(
                comp.name,
                lambda: probe(comp, state),
                deadline,
                alive=lambda: procs.state_of(comp) is not ProcState.DOWN,
            )
        except NotReady as exc:
            return f"{exc} (log: {comp.log})"
        procs.adopt(comp)  # ready means the daemon has written its pid file
        return None

    if not comps:
        return
    with ThreadPoolExecutor(max_workers=len(comps)) as pool:
        failures = [f for f in pool.map(one, comps) if f]
    if failures:
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        raise LabError(failures[0] + more)
