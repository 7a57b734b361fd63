"""A warm ansible-playbook: a process that has imported Ansible once and forks a run on
request, so a shared run's first gate is reached without paying Python's and Ansible's
start (≈ 0.6 CPU-s a run on the lab's machine) after the leading controller decides.

    python -m orchestrator.adapters.ansible_zygote --socket PATH

The leading controller starts it (adapters/ansible_worker.py) with the environment every
shared run's ansible-playbook gets; ansible-runner then starts `ansible_shim.py` in place
of ansible-playbook, which hands this process its argv, environment, working directory
and standard streams over PATH. Per request this process forks a child that becomes that
run's ansible-playbook: in its own session, on the shim's streams, with the run's
environment, calling ansible-playbook's own entry point. Ansible reads its configuration
when it is imported, so a run whose environment or working directory could change the
configuration (anything but what is each run's own: its artifacts, its marker, handed-over
secrets) is exec'd as a cold ansible-playbook instead, by the same child: always right,
only slower.

What this process guarantees the engine, as a plain ansible-playbook under ansible-runner
had it:
- the shim's exit status is the run's;
- the run dies when its shim does (ansible-runner cancels a run by killing the shim) and
  when the controller does (this process's stdin, a pipe from it, closes): every process
  of the run, found by ancestry, since Ansible's workers and their ssh each make a session
  of their own and the run's marker is not in a forked child's /proc environ;
- only the controller's user may connect (the socket's directory is private, and each
  peer's uid is checked).

It is single-threaded on purpose: forking a process that runs threads is unsafe.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# What differs between shared runs without changing Ansible's configuration: ansible-
# runner's per-run artifacts (read by its callback when it is loaded), the fact cache's
# directory (read from the constant when the cache is first used: reset in the child),
# sitectl's run marker, this worker's own socket and handed-over secrets' directory.
PER_RUN = frozenset(
    {
        "AWX_ISOLATED_DATA_DIR",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION",
        "SITECTL_PLAYBOOK_RUN",
        "SITECTL_ANSIBLE_WORKER",
        "SITECTL_SECRETS_DIR",
    }
)
HEADER = struct.Struct("!I")
MAX_REQUEST = 1 << 20
REQUEST_WAIT_S = 5.0  # a shim sends its whole request at once
KILL_PASSES = 50  # bounds the stop-and-walk loop of a run that forks without end


def cold_reason(ready: Mapping[str, str], run: Mapping[str, str], cwd: str) -> str | None:
    """Why a run must start as a cold ansible-playbook, or None when the warm one is the
    same program with the same configuration (pure but for the ansible.cfg look-up)."""
    differs = sorted(
        name
        for name in set(ready) | set(run)
        if name not in PER_RUN and ready.get(name) != run.get(name)
    )
    if differs:
        return "its environment differs in " + ", ".join(differs)
    if Path(cwd, "ansible.cfg").exists():
        return f"{cwd}/ansible.cfg may configure it"
    return None


def descendants(root: int) -> set[int]:
    """Every live process whose parent chain leads to `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text(errors="replace")
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(proc.name))
    found: set[int] = set()
    todo = [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def kill_tree(root: int) -> None:
    """SIGKILL `root` and all its descendants. Each pass stops what it finds (a stopped
    process neither forks nor exits, so nothing is orphaned away from the tree) until a
    pass finds nothing new; then everything is killed at once."""
    stopped: set[int] = set()
    for _ in range(KILL_PASSES):
        found = (descendants(root) | {root}) - stopped
        for pid in found:
            with _gone():
                os.kill(pid, signal.SIGSTOP)
        stopped |= found
        if not found:
            break
    for pid in stopped:
        with _gone():
            os.kill(pid, signal.SIGKILL)


class _gone:
    """Ignore a process that ended meanwhile."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> bool:
        return kind is not None and issubclass(kind, ProcessLookupError)


@dataclass
class Request:
    argv: list[str]
    env: dict[str, str]
    cwd: str
    fds: list[int]


def read_request(conn: socket.socket) -> Request:
    """One request: a length-prefixed JSON header with the shim's three streams."""
    head, fds, _, _ = socket.recv_fds(conn, HEADER.size, 3)
    if len(head) < HEADER.size or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ValueError("a request needs its length and three streams")
    (size,) = HEADER.unpack(head)
    if size > MAX_REQUEST:
        raise ValueError(f"a request of {size} bytes")
    body = b""
    while len(body) < size:
        chunk = conn.recv(size - len(body))
        if not chunk:
            raise ValueError("a request cut short")
        body += chunk
    fields = json.loads(body)
    return Request(list(fields["argv"]), dict(fields["env"]), str(fields["cwd"]), fds)


def send(conn: socket.socket, message: Mapping[str, object]) -> None:
    with contextlib.suppress(OSError):  # the shim is gone: the EOF ends its run
        conn.sendall(json.dumps(message).encode() + b"\n")


@dataclass
class Run:
    conn: socket.socket
    pid: int
    pidfd: int


class Zygote:
    def __init__(self, path: str, ready_env: Mapping[str, str]) -> None:
        self.ready_env = dict(ready_env)
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(path)
        self.listener.listen(16)
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.listener, selectors.EVENT_READ, "accept")
        # stdin is a pipe from the controller: its end means the controller is gone.
        self.selector.register(sys.stdin, selectors.EVENT_READ, "parent")
        self.runs: dict[int, Run] = {}  # by the shim connection's fd

    def serve(self) -> None:
        try:
            self._serve()
        finally:  # the controller went, or SIGTERM: no run outlives its worker
            self._end_all()

    def _serve(self) -> None:
        while True:
            for key, _ in self.selector.select():
                if key.data == "accept":
                    self._accept()
                elif key.data == "parent":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return
                elif key.data == "shim":
                    self._from_shim(key.fileobj)  # type: ignore[arg-type]
                else:
                    self._ended(key.data)

    def _accept(self) -> None:
        conn, _ = self.listener.accept()
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _, uid, _ = struct.unpack("3i", creds)
        if uid != os.getuid():
            conn.close()
            return
        try:
            conn.settimeout(REQUEST_WAIT_S)  # one stuck peer must not hold every run up
            request = read_request(conn)
            conn.settimeout(None)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            print(f"ansible worker: refused a request: {exc}", file=sys.stderr, flush=True)
            conn.close()
            return
        cold = cold_reason(self.ready_env, request.env, request.cwd)
        if cold is not None:
            print(f"ansible worker: a shared run starts cold: {cold}", file=sys.stderr, flush=True)
        pid = os.fork()
        if pid == 0:
            self._child(request, conn, cold)  # never returns
        for fd in request.fds:
            os.close(fd)
        pidfd = os.pidfd_open(pid)
        run = Run(conn, pid, pidfd)
        self.runs[conn.fileno()] = run
        self.selector.register(conn, selectors.EVENT_READ, "shim")
        self.selector.register(pidfd, selectors.EVENT_READ, run)
        send(conn, {"pid": pid})

    def _from_shim(self, conn: socket.socket) -> None:
        """The shim asks for its run to be killed, or went away: both end the run."""
        run = self.runs.get(conn.fileno())
        try:
            asked = conn.recv(64)
        except OSError:
            asked = b""
        if run is None:
            return
        kill_tree(run.pid)
        if asked:
            send(conn, {"killed": run.pid})
        self.selector.unregister(conn)

    def _ended(self, run: Run) -> None:
        _, status = os.waitpid(run.pid, 0)
        self.selector.unregister(run.pidfd)
        os.close(run.pidfd)
        if os.WIFSIGNALED(status):
            send(run.conn, {"signal": os.WTERMSIG(status)})
        else:
            send(run.conn, {"exit": os.waitstatus_to_exitcode(status)})
        self.runs.pop(run.conn.fileno(), None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(run.conn)
        run.conn.close()

    def _end_all(self) -> None:
        for run in list(self.runs.values()):
            kill_tree(run.pid)

    def _child(self, request: Request, conn: socket.socket, cold: str | None) -> None:
        """Become the run's ansible-playbook; never returns."""
        code = 1
        try:
            os.setsid()
            for number, fd in enumerate(request.fds):
                os.dup2(fd, number)
                os.close(fd)
            for run in self.runs.values():
                run.conn.close()
                os.close(run.pidfd)
            conn.close()
            self.selector.close()
            self.listener.close()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
                signal.signal(sig, signal.SIG_DFL)
            os.chdir(request.cwd)
            os.environ.clear()
            os.environ.update(request.env)
            if cold is not None:
                os.execvpe(request.argv[0], request.argv, request.env)
            code = _play(request.argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        except BaseException as exc:
            print(f"ansible worker: the run broke: {exc!r}", file=sys.stderr, flush=True)
        finally:
            os._exit(code)


def _play(argv: list[str]) -> int:
    """ansible-playbook's own entry point, on the streams and environment just set."""
    from ansible import constants
    from ansible.cli.playbook import main

    # The worker's clean-ups (the temporary directories Ansible made when imported) are
    # not the run's: run at its end, they would remove what the next run uses.
    atexit._clear()
    # Each run its own (see PER_RUN): read when first used, not at import.
    constants.CACHE_PLUGIN_CONNECTION = constants.config.get_config_value("CACHE_PLUGIN_CONNECTION")
    constants.DEFAULT_LOCAL_TMP = constants.config.get_config_value("DEFAULT_LOCAL_TMP")
    # Made when fd 1 was the controller's pipe; ansible-runner reads events line by line.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    sys.argv = list(argv)
    try:
        main(argv)
    finally:
        atexit._run_exitfuncs()  # the run's own: its local temporary directory
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    return 0


def warm_up() -> None:
    """Import what ansible-playbook imports before and while it runs a play."""
    import ansible.cli.playbook
    import ansible.executor.playbook_executor
    import ansible.executor.process.worker
    import ansible.executor.task_queue_manager
    import ansible.plugins.connection.ssh
    import ansible.plugins.strategy.linear  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.adapters.ansible_zygote")
    parser.add_argument("--socket", required=True)
    args = parser.parse_args(argv)
    # The controller's: a Ctrl-C at its terminal ends it, and with it this worker and its
    # runs (stdin closes), not this worker alone with its runs left going.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    started = time.monotonic()
    warm_up()
    zygote = Zygote(args.socket, os.environ)
    print(
        "ansible worker: the warm ansible-playbook is ready "
        f"(imports in {time.monotonic() - started:.2f} s)",
        file=sys.stderr,
        flush=True,
    )
    zygote.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
