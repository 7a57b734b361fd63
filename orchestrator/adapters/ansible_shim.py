"""ansible-playbook, started by the leading controller's warm worker (ansible_zygote.py).

    python -I -S ansible_shim.py ansible-playbook ARGS...

ansible-runner starts this in place of ansible-playbook. Standard library only, run
without site-packages, so it starts in a few hundredths of a second: it hands the worker
named by $SITECTL_ANSIBLE_WORKER its argv, environment, working directory and its three
streams (ansible-runner's pseudo-terminal), then waits and exits as the run did. Killing
it kills the run: on SIGINT or SIGTERM (how ansible-runner cancels) it asks the worker to
kill the run and waits until that is done; killed outright, the worker sees its
connection end and does the same; and when the worker dies under its run, this shim
kills the run itself (it knows its pid). When no worker answers, it becomes a cold
ansible-playbook (exec), so a run never depends on the worker being there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import struct
import sys
from types import ModuleType

HEADER = struct.Struct("!I")
KILL_WAIT_S = 10.0


def cold(argv: list[str]) -> None:
    os.execvp(argv[0], argv)


def ask(worker: str, argv: list[str]) -> socket.socket:
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(worker)
    body = json.dumps({"argv": argv, "env": dict(os.environ), "cwd": os.getcwd()}).encode()
    socket.send_fds(conn, [HEADER.pack(len(body))], [0, 1, 2])
    conn.sendall(body)
    return conn


def replies(conn: socket.socket) -> dict[str, int]:
    """The worker's next message, {} once it is gone."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = conn.recv(1)
        if not chunk:
            return {}
        line += chunk
    return json.loads(line)


def main(argv: list[str]) -> int:
    worker = os.environ.get("SITECTL_ANSIBLE_WORKER", "")
    try:
        conn = ask(worker, argv)
        started = replies(conn)
    except (OSError, ValueError):
        started = {}
    if "pid" not in started:
        cold(argv)  # never returns

    def kill(signum: int, _frame: object) -> None:
        signal.signal(signum, signal.SIG_IGN)
        conn.settimeout(KILL_WAIT_S)
        try:
            conn.sendall(b"kill\n")
            while (reply := replies(conn)) and "killed" not in reply:
                pass
        except (OSError, ValueError):
            pass
        os._exit(128 + signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, kill)
    ended = replies(conn)
    if "signal" in ended:
        signal.signal(ended["signal"], signal.SIG_DFL)
        os.kill(os.getpid(), ended["signal"])
    if "exit" in ended:
        return ended["exit"]
    # The worker died under its run, which lives on in a session of its own: end it here,
    # so nothing of it acts after sitectl has counted it out.
    _zygote().kill_tree(started["pid"])
    print(
        f"ansible-playbook: the controller's warm worker went away; its run (pid "
        f"{started['pid']}) was killed, every process of it",
        file=sys.stderr,
    )
    return 1


def _zygote() -> ModuleType:
    """ansible_zygote.py beside this file, for its kill_tree (it imports only the
    standard library at load; loaded by path, as this directory holds an ansible.py)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ansible_zygote.py")
    spec = importlib.util.spec_from_file_location("sitectl_ansible_zygote", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
