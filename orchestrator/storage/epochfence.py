"""The operation epoch, checked on the host before a mirror or mount changes (issue 18).

An engine frozen after its playbook released a storage task can wake up after a newer
leader has acted. The storage CLI therefore compares-and-sets the operation's epoch on
the host, under a lock it holds for the whole operation: an action tagged with an epoch
older than one that has already acted on this relationship is refused, and every
fenced action is appended to a ledger (`<state file>.epochs.jsonl`), one JSON line each,
so a reader can check that no older epoch ever acted after a newer one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from orchestrator.errors import Failed


def refused(newest: int | None, epoch: int) -> str | None:
    """Why an action at `epoch` may not run after `newest` acted, or None (pure)."""
    if newest is not None and epoch < newest:
        return (
            f"epoch {epoch} is stale: epoch {newest} has already acted on this mirror "
            "(a newer operation holds the lease)"
        )
    return None


def ledger_path(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".epochs.jsonl")


def newest(ledger: Path) -> int | None:
    if not ledger.exists():
        return None
    epochs = [json.loads(line)["epoch"] for line in ledger.read_text().splitlines() if line]
    return max(epochs, default=None)


@contextlib.contextmanager
def fenced(state_file: Path, epoch: int, action: str, site: str | None) -> Iterator[None]:
    """Hold the relationship's epoch lock around one action at `epoch`; Failed (nothing
    done) when a newer epoch has acted. The action is in the ledger once it began."""
    ledger = ledger_path(state_file)
    lock = state_file.with_name(state_file.name + ".epoch.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # bounded by the step's deadline: the engine kills us
        why = refused(newest(ledger), epoch)
        if why is not None:
            raise Failed(why)
        entry = {"epoch": epoch, "action": action, "site": site, "at": time.time()}
        with ledger.open("a") as out:
            out.write(json.dumps(entry, sort_keys=True) + "\n")
        yield
    finally:
        os.close(fd)
