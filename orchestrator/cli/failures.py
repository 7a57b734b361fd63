"""How a command that reads or changes ZooKeeper's records says it failed: one line, and
the exit code a script can act on (orchestrator/engine/exits.py's table, which the
controller also answers requests with); light enough for `sitectl status`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from orchestrator.cli.output import fail
from orchestrator.engine import exits
from orchestrator.errors import SitectlError


@contextmanager
def engine_errors() -> Iterator[None]:
    """One line per failure, with the exit code a script can act on."""
    try:
        yield
    except SitectlError as exc:
        code, line = exits.failure(exc)
        fail(line, code)
