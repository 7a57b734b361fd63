"""The lab's state directory and its record of what was started.

`state.json` is the single source of truth for teardown and fault injection: every
process `lab up` starts is recorded (argv, cwd, log, pid and the kernel start time that
guards against PID reuse) *before* anything waits on it, as is every namespace, link and
volume resource. So `lab down` after a crash or a half-finished `up` knows exactly what
to stop, and `heal-site` can restart a killed process exactly as it was.

Mutations happen under an flock on `<state>/lock`: `lab` commands, the app helper run by
playbooks and tests may touch the record concurrently.

A marker at /run/sitectl-lab.json names the state dir of the lab running in this
namespace; two labs would fight over the ops network's addresses and route.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MARKER = Path(os.environ.get("SITECTL_LAB_MARKER", "/run/sitectl-lab.json"))
STATE_FILE = "state.json"


def default_state_dir() -> Path:
    return Path(os.environ.get("SITECTL_LAB_DIR") or ".lab").absolute()


def topology_path(root: Path) -> Path:
    """Where `lab up` writes the lab's topology file."""
    return root / "topology.yaml"


@dataclass
class Component:
    """One server process of the lab."""

    name: str  # unique, e.g. "dc1-zookeeper", "dc2-ldap1"
    site: str
    kind: str  # zookeeper, named, slapd, postfix, dovecot, s3store, mirrord
    address: str  # "ip:port" a client uses, for status and env
    argv: list[str]
    cwd: str
    log: str
    env: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    start_time: int | None = None  # /proc/PID/stat starttime, to detect PID reuse
    wanted: bool = True  # False: configured but deliberately stopped (the standby app)
    # For servers whose launcher forks the real daemon into its own session (Postfix's
    # `start-fg` runs `master` as a child that calls setsid): the daemon's pid file.
    pid_file: str | None = None
    # Left behind by a killed process and removed before it starts again: Dovecot refuses
    # to start while its master.pid names a live PID, and after a SIGKILL that PID may
    # well be reused (by any process, or a thread) by the time the site is healed.
    stale_files: list[str] = field(default_factory=list)
    # The network namespace it runs in (its site's), entered with nsenter at each start;
    # None for what has no network of its own (the mirror daemon, standing in for arrays).
    netns: str | None = None


@dataclass
class LabState:
    root: Path
    components: dict[str, Component] = field(default_factory=dict)
    resources: dict[str, Any] = field(default_factory=dict)  # volumes, mirror, …
    complete: bool = False  # every component came up and passed its probe

    @property
    def path(self) -> Path:
        return self.root / STATE_FILE

    def site_dir(self, site: str, component: str) -> Path:
        return self.root / site / component

    @property
    def secrets(self) -> Path:
        return self.root / "secrets"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    def of_site(self, site: str) -> list[Component]:
        return [c for c in self.components.values() if c.site == site]

    def save(self) -> None:
        data = {
            "version": 1,
            "complete": self.complete,
            "resources": self.resources,
            "components": [asdict(c) for c in self.components.values()],
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a record


def load(root: Path) -> LabState:
    """The recorded state; an empty record if `root` holds none (nothing was started)."""
    state = LabState(root=root)
    if not state.path.exists():
        return state
    data = json.loads(state.path.read_text())
    state.complete = bool(data.get("complete"))
    state.resources = dict(data.get("resources", {}))
    for raw in data.get("components", []):
        comp = Component(**raw)
        state.components[comp.name] = comp
    return state


@contextlib.contextmanager
def locked(root: Path) -> Iterator[LabState]:
    """Load, yield for changes, save: all under the state dir's exclusive lock."""
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = load(root)
        try:
            yield state
        finally:
            # Saved even when the body raised: a half-started up must stay on record.
            state.save()


@contextlib.contextmanager
def machine_lock() -> Iterator[None]:
    """One `lab up`/`down` at a time on this machine.

    Checking the marker and claiming the addresses must be one step: two concurrent
    `up`s would otherwise both see no lab, then fight over ports, and one's rollback could
    remove the lo addresses the other relies on.
    """
    path = MARKER.with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def read_marker() -> Path | None:
    try:
        return Path(json.loads(MARKER.read_text())["state_dir"])
    except (OSError, ValueError, KeyError):
        return None


def write_marker(root: Path) -> None:
    MARKER.parent.mkdir(parents=True, exist_ok=True)
    MARKER.write_text(json.dumps({"state_dir": str(root)}) + "\n")


def clear_marker(root: Path) -> None:
    if read_marker() == root:
        MARKER.unlink(missing_ok=True)
