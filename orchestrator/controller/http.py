"""Per-controller HTTP endpoint: /metrics (Prometheus), /status (JSON), /healthz.

Its own CollectorRegistry, so several controllers in one process (tests) and the
process's default collectors never mix; http.server on a daemon thread, because three
read-only endpoints do not justify a web framework.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from orchestrator.controller.decision import Action, SiteView
from orchestrator.coordination.ticket import Ticket


class Metrics:
    def __init__(self, site: str) -> None:
        self.registry = CollectorRegistry()
        labels = {"registry": self.registry}
        self.info = Gauge("sitectl_controller_info", "This controller's site.", ["site"], **labels)
        self.info.labels(site).set(1)
        self.leader = Gauge("sitectl_controller_leader", "1 while the verified leader.", **labels)
        self.connected = Gauge(
            "sitectl_controller_zookeeper_connected",
            "1 while the ZooKeeper session is connected.",
            **labels,
        )
        self.site_down = Gauge(
            "sitectl_controller_site_down",
            "1 if this vantage point's latest probe found the site down.",
            ["site"],
            **labels,
        )
        self.streak = Gauge(
            "sitectl_controller_site_down_streak",
            "Consecutive probes that found the site down.",
            ["site"],
            **labels,
        )
        self.probes = Counter(
            "sitectl_controller_probes", "Site verdicts by status.", ["site", "status"], **labels
        )
        self.probe_seconds = Gauge(
            "sitectl_controller_probe_duration_seconds",
            "How long the latest probe sweep took.",
            **labels,
        )
        self.decisions = Counter(
            "sitectl_controller_decisions", "Leader decisions by action.", ["action"], **labels
        )
        self.fresh = Gauge(
            "sitectl_controller_vantage_points_fresh",
            "Vantage points that reported recently (leader only).",
            **labels,
        )
        self.operation = Gauge(
            "sitectl_controller_operation_in_progress",
            "1 while an operation is recorded as in progress.",
            **labels,
        )
        self.loss = Gauge(
            "sitectl_controller_estimated_loss_seconds",
            "Readiness gate's estimated data loss of the target, per kind.",
            ["kind"],
            **labels,
        )
        self.ticket_holder = Gauge(
            "sitectl_ticket_holder",
            "1 for the site that holds the site ticket, 0 for the others.",
            ["site"],
            **labels,
        )
        self.ticket_renewed = Gauge(
            "sitectl_ticket_renewed_timestamp_seconds",
            "When the site ticket was last renewed (its holder's clock).",
            **labels,
        )
        self.ticket_expiry = Gauge(
            "sitectl_ticket_expiry_seconds",
            "Seconds until the site ticket expires unrenewed (negative: expired).",
            **labels,
        )
        self.split_brain = Gauge(
            "sitectl_split_brain",
            "1 while this vantage point's latest probe found two sites serving, else 0.",
            **labels,
        )
        self.ticket_renewals = Counter(
            "sitectl_ticket_renewals",
            "Renewals of the site ticket this controller made.",
            **labels,
        )
        for action in Action:
            self.decisions.labels(action.value)

    def observed(self, sites: dict[str, SiteView], seconds: float) -> None:
        self.probe_seconds.set(seconds)
        for name, view in sites.items():
            self.site_down.labels(name).set(1 if view.status == "down" else 0)
            self.streak.labels(name).set(view.streak)
            self.probes.labels(name, view.status).inc()

    def ticket(self, sites: Iterable[str], ticket: Ticket | None, now: float) -> None:
        for site in sites:
            self.ticket_holder.labels(site).set(1 if ticket and ticket.holder == site else 0)
        if ticket is not None:
            self.ticket_renewed.set(ticket.renewed_at)
            self.ticket_expiry.set(ticket.expires_at - now)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class Board:
    """What /status shows: written by the controller's threads, read by HTTP's."""

    def __init__(self, **initial: Any) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, Any] = dict(initial)

    def update(self, **fields: Any) -> None:
        with self._lock:
            self._data.update(fields)

    def read(self) -> dict[str, Any]:
        with self._lock:
            return json.loads(json.dumps(self._data, default=str))  # a deep, plain copy


Health = Callable[[], tuple[bool, str]]


def serve(
    address: str, port: int, metrics: Metrics, board: Board, health: Health
) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render(), CONTENT_TYPE_LATEST)
            elif path == "/status":
                self._send(
                    200, json.dumps(board.read(), indent=2).encode() + b"\n", "application/json"
                )
            elif path == "/healthz":
                ok, why = health()
                self._send(200 if ok else 503, (why + "\n").encode(), "text/plain")
            else:
                self._send(404, b"try /metrics, /status or /healthz\n", "text/plain")

        def _send(self, code: int, body: bytes, content_type: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes every few seconds would drown the decisions in the log

    server = ThreadingHTTPServer((address, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="controller http", daemon=True).start()
    return server
