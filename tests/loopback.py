"""Small socket servers for tests: a listening socket on 127.0.0.1 and a free port, and
a serve loop run on a thread for the length of a `with` block."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator


def listener(backlog: int = 8) -> socket.socket:
    """A TCP socket listening on 127.0.0.1 and a port of the kernel's choosing."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(backlog)
    return server


@contextlib.contextmanager
def serving(serve: Callable[[threading.Event], None]) -> Iterator[None]:
    """Run `serve(stop)` on a daemon thread until the block ends, then set `stop` and
    wait (bounded) for it to return."""
    stop = threading.Event()
    thread = threading.Thread(target=serve, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)
