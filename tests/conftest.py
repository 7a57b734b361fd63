"""Shared fixtures. The `lab` fixture runs the real `sitectl lab up` once per session.

Any test suite that needs real servers takes `lab` (a LabHandle): the state dir, the
`lab env --json` document, and helpers to run lab commands and read credentials. The
lab is torn down with `lab down --purge` at the end of the session, and the teardown
checks that nothing was left behind (process, mount, loop device, namespace, link).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import pytest

from orchestrator.lab import hosts, layout, netns, volumes
from orchestrator.lab import state as lab_state
from orchestrator.lab.credentials import TsigKey, read_tsig_key
from orchestrator.lab.procs import ProcState, state_of

T = TypeVar("T")

# The tests written before the controllers ran operations run them in sitectl's own
# process (`--local`), as every `sitectl` they start inherits this; the tests of the
# controller path (tests/controller/test_requests_lab.py) take it out of the
# environment of the commands they run.
os.environ.setdefault("SITECTL_LOCAL", "1")


def lab_command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m orchestrator.lab ARGS` (the same code as `sitectl lab`)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.lab", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=180,
        check=False,
    )


def eventually(probe: Callable[[], T], what: str, within: float = 20.0) -> T:
    """Poll `probe` until it returns a truthy value; fail naming `what` after `within` s.

    A bound on waiting for replication, not a timing assertion: `within` is generous.
    """
    deadline = time.monotonic() + within
    last: Any = None
    while True:
        try:
            last = probe()
            if last:
                return last
        except Exception as exc:  # a server still converging may refuse or time out
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: still not true after {within:.0f} s (last: {last!r})")
        time.sleep(0.1)


@dataclass
class LabHandle:
    state_dir: Path
    env: dict[str, Any]

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return lab_command(*args, "--state-dir", str(self.state_dir), env=env)

    def ok(self, *args: str) -> str:
        result = self.cli(*args)
        assert result.returncode == 0, f"lab {' '.join(args)}: {result.stderr}{result.stdout}"
        return result.stdout

    def status(self) -> dict[str, dict[str, Any]]:
        return {row["component"]: row for row in json.loads(self.ok("status", "--json"))}

    def state(self) -> lab_state.LabState:
        return lab_state.load(self.state_dir)

    def secret(self, path: str) -> str:
        return Path(path).read_text().strip()

    @property
    def ldap_password(self) -> str:
        return self.secret(self.env["ldap"]["password_file"])

    @property
    def mail_password(self) -> str:
        return self.secret(self.env["mail"]["password_file"])

    def ddns_key(self, zone: str) -> TsigKey:
        return read_tsig_key(Path(self.env["dns"]["zones"][zone]["ddns_key_file"]))

    def active_site(self) -> str:
        """The site whose volume is writable: dc1 after `up`, another after a failover
        that an earlier test (or drill) did not undo. Tests take it from here."""
        return volumes.writable_site(self.state())

    def standby_site(self) -> str:
        active = self.active_site()
        return next(site for site in layout.DATACENTERS if site != active)

    def heal_all(self) -> None:
        for site in layout.SITES:
            self.ok("heal-site", site)

    def renew(self, shape: str = "single") -> None:
        """A brand-new lab in the same state dir (same addresses and paths, new data and
        secrets): ~10 s, where putting a failed-over lab back by operations takes a
        minute. For scenarios that only need to start from home; the way back itself is
        a scenario of its own (tests/engine, tests/drill). `shape`: see lab/shape.py."""
        down = self.cli("down", "--purge")
        assert down.returncode == 0, f"lab down: {down.stderr}{down.stdout}"
        up = self.cli("up", "--shape", shape)
        assert up.returncode == 0, f"lab up: {up.stderr}{up.stdout}"
        self.env = json.loads(self.ok("env", "--json"))


def leftovers(state_dir: Path, pids: list[int]) -> list[str]:
    """Everything of a lab in `state_dir` still present on the machine."""
    found = []
    for pid in pids:
        if Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid):
            found.append(f"process {pid}")
    mounts = Path("/proc/mounts").read_text()
    found += [f"mount {line.split()[1]}" for line in mounts.splitlines() if str(state_dir) in line]
    loops = subprocess.run(["losetup", "-a"], capture_output=True, text=True).stdout
    found += [f"loop {line.split(':')[0]}" for line in loops.splitlines() if str(state_dir) in line]
    # The networks: namespaces (the router's nft table goes with its namespace), the ops
    # link, the resolver files of the sites' clients and the SSH control sockets.
    found += [f"network {name}" for name in netns.leftovers(state_dir)]
    found += [
        f"resolver {netns.ETC_NETNS / netns.namespace(state_dir, site)}"
        for site in layout.SITES
        if (netns.ETC_NETNS / netns.namespace(state_dir, site)).exists()
    ]
    if hosts.control_dir(state_dir).exists():
        found.append(f"ssh control dir {hosts.control_dir(state_dir)}")
    return found


def _proc_state(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "Z"
    return raw[raw.rindex(")") + 2 :].split()[0]


def recorded_pids(state_dir: Path) -> list[int]:
    state = lab_state.load(state_dir)
    return [c.pid for c in state.components.values() if c.pid and state_of(c) is not ProcState.DOWN]


# On a shared workstation other test sessions and drills take turns on the one lab the
# fixed addresses allow. A session holds an flock for its whole life (tests take the lab
# down and up again, and another session must not slip in between); it waits for the
# machine rather than failing. CI never has another lab.
WAIT_FOR_OTHER_LAB_S = float(os.environ.get("SITECTL_TEST_LAB_WAIT", "900"))
SESSION_LOCK = lab_state.MARKER.with_name("sitectl-lab-test-session.lock")


def _other_lab_running() -> Path | None:
    running = lab_state.read_marker()
    if running is not None and running.exists() and recorded_pids(running):
        return running
    return None


def _claim_the_machine(
    state_dir: Path, shape: str = "single"
) -> tuple[IO[str], subprocess.CompletedProcess[str]]:
    """Take the test-session lock, then `lab up` once no other lab runs."""
    deadline = time.monotonic() + WAIT_FOR_OTHER_LAB_S
    SESSION_LOCK.parent.mkdir(parents=True, exist_ok=True)
    session = open(SESSION_LOCK, "a")  # noqa: SIM115 - held for the whole session
    while True:
        try:
            fcntl.flock(session, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() > deadline:
                pytest.fail(f"another test session holds the lab ({SESSION_LOCK})")
            time.sleep(5)
    while True:
        other = _other_lab_running()
        if other is None:
            result = lab_command("up", "--state-dir", str(state_dir), "--shape", shape)
            # 3 (LOCKED): a drill got the machine between our check and our up.
            if result.returncode != 3:
                return session, result
        if time.monotonic() > deadline:
            pytest.fail(f"a lab is running from {other}; run `sitectl lab down` there first")
        time.sleep(5)


# The session's `lab` while it is up: a module that needs a lab of another shape
# reshapes this one rather than wait for the machine it holds (see `lab_of_shape`).
_SESSION_LAB: list[LabHandle] = []


@pytest.fixture(scope="session")
def lab() -> Iterator[LabHandle]:
    with lab_session() as handle:
        _SESSION_LAB.append(handle)
        try:
            yield handle
        finally:
            _SESSION_LAB.remove(handle)


@contextlib.contextmanager
def lab_of_shape(shape: str) -> Iterator[LabHandle]:
    """A lab of `shape` for one module: the session's lab made over in that shape (and
    made over as a single one after) when the session has one up, else a lab of its own,
    so a module run alone pays one `lab up`."""
    if not _SESSION_LAB:
        with lab_session(shape) as handle:
            yield handle
        return
    shared = _SESSION_LAB[0]
    shared.renew(shape)
    try:
        yield shared
    finally:
        shared.renew()


@contextlib.contextmanager
def lab_session(shape: str = "single") -> Iterator[LabHandle]:
    """`lab up` in a new state dir once the machine is ours; at the end `lab down
    --purge`, checking that nothing it made is left."""
    # Not under pytest's basetemp: that is mode 0700 (Postfix and Dovecot run as their own
    # users and must reach the lab's files) and other pytest sessions prune it.
    parent = Path(tempfile.mkdtemp(prefix="sitectl-lab-"))
    parent.chmod(0o755)
    state_dir = parent / "state"
    try:
        session, result = _claim_the_machine(state_dir, shape)
    except BaseException:
        parent.rmdir()  # nothing was started in it
        raise
    if result.returncode != 0:
        # Stopped but kept, so its logs explain the failure.
        lab_command("down", "--state-dir", str(state_dir))
        session.close()
        pytest.fail(f"lab up failed (logs kept in {state_dir}): {result.stderr}{result.stdout}")
    env = json.loads(lab_command("env", "--json", "--state-dir", str(state_dir)).stdout)
    try:
        yield LabHandle(state_dir, env)
    finally:
        try:
            pids = [c.pid for c in lab_state.load(state_dir).components.values() if c.pid]
            down = lab_command("down", "--purge", "--state-dir", str(state_dir))
            assert down.returncode == 0, down.stderr
            left = leftovers(state_dir, pids)
            assert not left, f"lab down left behind: {', '.join(left)}"
            assert not state_dir.exists()
            parent.rmdir()
        finally:
            session.close()  # releases the session lock


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (the closest thing to S3 that speaks its wire
    protocol here), one per test module so modules never see each other's buckets."""
    from moto.server import ThreadedMotoServer  # only the modules that use it pay for it

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()
