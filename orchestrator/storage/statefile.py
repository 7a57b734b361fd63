"""Relationship state on disk: one JSON file, replaced atomically, guarded by a lock file.

The daemon and the orchestrator both change the same relationship, so every operation
holds an exclusive `flock` on `<state>.lock` for its whole read-modify-write (a quiesce
therefore waits for an in-flight transfer to end, as SnapMirror's does). Readers need no
lock: `os.replace` means they see the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import Failed, Unavailable
from orchestrator.storage.relationship import Relationship


def load(path: Path) -> Relationship | None:
    """The saved relationship, or None if it was never initialised."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return Relationship.from_json(json.loads(text))
    except (ValueError, TypeError, KeyError) as exc:
        raise Failed(f"mirror state file {path} is unreadable: {exc}") from exc


def save(path: Path, rel: Relationship) -> None:
    """Write atomically and durably: temp file in the same directory, fsync, rename, fsync dir."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(rel.to_json(), fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def locked(path: Path, timeout: float = 30.0) -> Iterator[None]:
    """Hold the relationship's exclusive lock; Unavailable if another holder keeps it too long."""
    lock_path = path.with_name(path.name + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Unavailable(
                        f"mirror lock {lock_path} held by another operation for {timeout:.0f} s"
                    ) from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
