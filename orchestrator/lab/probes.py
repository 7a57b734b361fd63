"""Readiness probes: wait on a real answer from a server, never on a sleep."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_S = 0.1


class NotReady(Exception):
    """A component did not pass its readiness probe before the deadline."""


def wait_until(
    what: str, probe: Callable[[], bool], deadline: float, alive: Callable[[], bool]
) -> None:
    """Poll `probe` until it returns True.

    Raises NotReady when the monotonic `deadline` passes or as soon as `alive()` says
    the process died (no point waiting for a server that exited on a config error).
    Probe exceptions count as "not yet": servers refuse connections while starting.
    """
    last_error = ""
    while True:
        try:
            if probe():
                return
        except Exception as exc:  # any failure to answer means "not ready yet"
            last_error = f"{type(exc).__name__}: {exc}"
        if not alive():
            raise NotReady(f"{what} exited during start-up")
        if time.monotonic() >= deadline:
            raise NotReady(f"{what} not ready in time ({last_error or 'probe said no'})")
        time.sleep(POLL_S)
