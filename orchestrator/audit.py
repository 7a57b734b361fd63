"""The audit log: one JSON line per step transition and per operation event, recording
who (OS user and host), what, when, under which fencing epoch, why, and the result."""

from __future__ import annotations

import getpass
import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

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
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Append and fsync: after a crash the log must show the last transition.
            with open(self.path, "a", encoding="utf-8") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line]
