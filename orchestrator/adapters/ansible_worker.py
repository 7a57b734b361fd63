"""The leading controller's warm ansible-playbook (ansible_zygote.py), from its side.

`start` launches the worker with the environment a shared run's ansible-playbook gets;
`command_through` turns a run's ansible-playbook command line into the shim's
(ansible_shim.py) while a worker is up, and `stop` ends it (and any run it still has).
The worker dies with this process too: its stdin is a pipe from here. One per process.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("sitectl.engine")

# Both run by path in isolated mode (-I): no sitectl import, and their own directory, which
# holds adapters/ansible.py, never shadows the ansible package.
SHIM = Path(__file__).with_name("ansible_shim.py")
ZYGOTE = Path(__file__).with_name("ansible_zygote.py")
WORKER_VAR = "SITECTL_ANSIBLE_WORKER"
STOP_WAIT_S = 5.0
# Its directory's name holds the controller's pid, so a later start removes what a
# killed controller left (adapters/ansible.warm_worker).
DIR_PREFIX = "sitectl-ansible-worker-"


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    directory: Path

    @property
    def socket(self) -> Path:
        return self.directory / "worker.sock"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()  # the worker kills what it still runs, then ends
        try:
            self.process.wait(STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


_worker: Worker | None = None
_lock = threading.Lock()


def start(environment: Callable[[], Mapping[str, str]]) -> Worker:
    """The worker, started with `environment()` unless one is up; it is ready a second or
    so later, and until then runs start cold (the shim finds no socket)."""
    global _worker
    with _lock:
        if _worker is not None and _worker.alive():
            return _worker
        if _worker is not None:
            log.info(
                "the warm ansible-playbook worker ended (exit %s); starting another",
                _worker.process.returncode,
            )
            _worker.stop()
        # Private: whoever can connect could run ansible-playbook as this user.
        directory = Path(tempfile.mkdtemp(prefix=f"{DIR_PREFIX}{os.getpid()}-"))
        process = subprocess.Popen(
            [sys.executable, "-I", str(ZYGOTE), "--socket", str(directory / "worker.sock")],
            env=dict(environment()),
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=directory,
        )
        threading.Thread(
            target=_relay, args=(process,), name="ansible-worker-log", daemon=True
        ).start()
        _worker = Worker(process, directory)
        return _worker


def _relay(process: subprocess.Popen[bytes]) -> None:
    """The worker's sentences (ready, a run started cold and why) into our log."""
    assert process.stderr is not None
    for line in process.stderr:
        text = line.decode(errors="replace").rstrip()
        if text.startswith("ansible worker: "):
            log.info("%s", text.removeprefix("ansible worker: "))
        elif text:
            log.debug("ansible worker: %s", text)


def running() -> bool:
    with _lock:
        return _worker is not None and _worker.alive()


def stop() -> None:
    global _worker
    with _lock:
        if _worker is not None:
            _worker.stop()
            _worker = None


def command_through(command: list[str]) -> tuple[list[str], dict[str, str]] | None:
    """The shim's command line and the variable naming the worker's socket, for a run of
    `command` (ansible-playbook …), or None when no worker is up."""
    with _lock:
        worker = _worker
    if worker is None or not worker.alive():
        return None
    shim = [sys.executable, "-I", "-S", str(SHIM), *command]
    return shim, {WORKER_VAR: str(worker.socket)}
