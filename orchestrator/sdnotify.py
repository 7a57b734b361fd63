"""systemd's notify protocol (sd_notify(3)), enough for `Type=notify` and `WatchdogSec=`.

A service started by systemd with `Type=notify` finds in $NOTIFY_SOCKET the path of a
unix datagram socket (an abstract one when it starts with '@'); each message is one
datagram of newline-separated `KEY=VALUE` lines: `READY=1` once it serves, `STATUS=…`
for `systemctl status`, `WATCHDOG=1` at least once per $WATCHDOG_USEC while it is
healthy, `STOPPING=1` on the way out. Without $NOTIFY_SOCKET (a shell, the lab) every
call does nothing, so the daemons need not know how they were started.

Written here rather than taken from a package: it is one sendto().
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Mapping


def _address(environ: Mapping[str, str]) -> str | None:
    path = environ.get("NOTIFY_SOCKET", "")
    if not path:
        return None
    # '@name' is an abstract socket: a leading NUL byte, no file.
    return "\0" + path[1:] if path.startswith("@") else path


def notify(*lines: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `lines` (e.g. "READY=1", "STATUS=serving") to systemd in one datagram.

    True when sent; False without $NOTIFY_SOCKET or when the socket refused it. Never
    raises: a daemon must not stop serving because its supervisor stopped listening."""
    address = _address(os.environ if environ is None else environ)
    if address is None or not lines:
        return False
    message = "\n".join(lines).encode()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.sendto(message, address)
    except OSError:
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds within which systemd expects WATCHDOG=1 ($WATCHDOG_USEC), or None when no
    watchdog is set for this process ($WATCHDOG_PID names another one, as after a fork)."""
    env = os.environ if environ is None else environ
    usec, pid = env.get("WATCHDOG_USEC", ""), env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


class Watchdog:
    """WATCHDOG=1 at most every quarter interval, from whichever loop calls `pet()`.

    The loop that calls it is the one whose progress the watchdog proves: a loop stuck
    for the whole interval sends nothing, and systemd restarts the service. A quarter,
    not sd_notify's usual half: a pet that came just too soon is skipped, and the loop's
    next turn may be one bounded action later (the dead-man agent's, up to 15 s)."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        interval = watchdog_interval(self._environ)
        self.every = None if interval is None else interval / 4
        self._clock = clock
        self._last: float | None = None
        self._lock = threading.Lock()

    def pet(self) -> bool:
        """Send WATCHDOG=1 if a quarter interval has passed since the last one; True when sent."""
        if self.every is None:
            return False
        with self._lock:
            now = self._clock()
            if self._last is not None and now - self._last < self.every:
                return False
            self._last = now
        return notify("WATCHDOG=1", environ=self._environ)

    def keep_petting(self, healthy: Callable[[], bool], stop: threading.Event) -> None:
        """Pet from a thread of its own while `healthy()` says so, until `stop` is set:
        for a daemon whose progress a check reads (the controller's health)."""
        if self.every is None:
            return
        tick = min(self.every / 2, 1.0)

        def loop() -> None:
            while not stop.wait(tick):
                if healthy():
                    self.pet()

        threading.Thread(target=loop, name="watchdog", daemon=True).start()
