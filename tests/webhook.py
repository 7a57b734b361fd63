"""A webhook receiver on 127.0.0.1 for tests: the stdlib's HTTP server on a thread,
recording every POST's JSON body and headers, answering `code` after `delay` seconds."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# Every key of a notification, in the order docs/notifications.md documents them.
PAYLOAD_KEYS = [
    "schema",
    "event",
    "seq",
    "at",
    "cluster",
    "operation",
    "epoch",
    "mode",
    "trigger",
    "drill",
    "from_site",
    "to_site",
    "by",
    "reason",
    "step",
    "status",
    "detail",
    "findings",
]


@dataclass
class Receiver:
    url: str
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    code: int = 204
    delay: float = 0.0

    def events(self) -> list[str]:
        return [p["event"] for p in self.posts]


@contextlib.contextmanager
def receiving(path: str = "/hook") -> Iterator[Receiver]:
    box: list[Receiver] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            me = box[0]
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(me.delay)
            with lock:
                me.posts.append(json.loads(body))
                me.headers.append(dict(self.headers))
            self.send_response(me.code)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    box.append(Receiver(f"http://127.0.0.1:{server.server_port}{path}"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield box[0]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
