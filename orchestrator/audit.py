"""The audit log: one JSON line per step transition and per operation event, recording
who (OS user and host), what, when, under which fencing epoch, why, and the result.

Written as root, usually: the file is opened without following a link (a link planted
there is refused, naming it, rather than appended through to its target) and created
0600, in a directory created 0700 (orchestrator/safefiles.py)."""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import IO, Any

from orchestrator.safefiles import open_append, private_dir

DEFAULT_PATH = Path("/var/log/sitectl/audit.jsonl")
ENV_VAR = "SITECTL_AUDIT_LOG"


def identity() -> str:
    """user@host:pid — who holds a lease or ran a step."""
    return f"{os_user()}@{socket.gethostname()}:{os.getpid()}"


def os_user() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no passwd entry (containers): the uid still says who
        return str(os.getuid())


def beside(local_state: Path) -> AuditLog:
    """The audit log of this machine's sitectl: `SITECTL_AUDIT_LOG`, else in the
    topology's local state."""
    override = os.environ.get(ENV_VAR)
    return AuditLog(Path(override) if override else local_state / "audit.jsonl")


class AuditLog:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or Path(os.environ.get(ENV_VAR, DEFAULT_PATH))
        self._lock = threading.Lock()

    def write(self, event: str, **fields: Any) -> None:
        record = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z",
            "event": event,
            "user": os_user(),
            "host": socket.gethostname(),
            **fields,
        }
        line = json.dumps(record, sort_keys=True, default=str) + "\n"
        with self._lock, self._open() as out:
            # Append and fsync: after a crash the log must show the last transition.
            out.write(line)
            out.flush()
            os.fsync(out.fileno())

    def check(self) -> None:
        """Raise UnsafePath now, before an operation changes anything, if the log cannot
        be written safely (a link planted in its place); creates it if missing."""
        with self._lock, self._open():
            pass

    def _open(self) -> IO[str]:
        # The directory is where the operator put the log (a link there is theirs);
        # created 0700 when missing.
        private_dir(self.path.parent, root=self.path.parent)
        return os.fdopen(open_append(self.path, "audit log"), "a", encoding="utf-8")

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
