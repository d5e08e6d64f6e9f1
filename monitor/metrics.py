"""Prometheus metrics and the /healthz + /metrics endpoint of `monitor run`."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

log = logging.getLogger("monitor.metrics")

REGISTRY = CollectorRegistry()
POLLS = Counter("monitor_feed_polls", "Feed fetches by outcome", ["outcome"], registry=REGISTRY)
ENTRIES = Counter("monitor_entries", "Entries stored, new or revised", ["kind"], registry=REGISTRY)
DEVELOPMENTS = Counter("monitor_developments", "Developments opened", registry=REGISTRY)
MATCHES = Counter("monitor_matched_entries", "Entries on topic", registry=REGISTRY)
ALERTS = Counter("monitor_alerts", "Alerts created", ["kind"], registry=REGISTRY)
DELIVERIES = Counter(
    "monitor_delivery_attempts",
    "Delivery attempts by outcome",
    ["channel", "outcome"],
    registry=REGISTRY,
)
DELIVERY_SECONDS = Histogram(
    "monitor_delivery_seconds", "Time to send one delivery", ["channel"], registry=REGISTRY
)
QUEUE = Gauge("monitor_deliveries_due", "Deliveries due and not yet sent", registry=REGISTRY)
LAST_TICK = Gauge(
    "monitor_last_tick_timestamp", "When the scheduler last ran a tick", registry=REGISTRY
)


class Endpoint:
    """A small HTTP server on a daemon thread: /healthz (JSON) and /metrics."""

    def __init__(self, host: str, port: int, health: Callable[[], dict[str, Any]]) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(REGISTRY))
                elif self.path.split("?")[0] == "/healthz":
                    report = outer.health()
                    self._send(
                        200 if report.get("ok") else 503,
                        "application/json",
                        json.dumps(report).encode(),
                    )
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, status: int, ctype: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.health = health
        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Ticks:
    last = 0.0
    failed_in_row = 0
    last_failure: str | None = None


# Ticks in a row that failed (or whose every polled feed failed) before /healthz says so.
FAILED_TICKS = 3


def mark_tick() -> None:
    _Ticks.last = time.time()
    LAST_TICK.set(_Ticks.last)


def tick_done(feeds: int, errors: int) -> None:
    """A tick finished; one where every polled feed failed (a full disk, a dead network)
    counts as failed."""
    if feeds and errors >= feeds:
        tick_failed(f"all {feeds} feeds polled failed")
    else:
        _Ticks.failed_in_row = 0
        _Ticks.last_failure = None


def tick_failed(reason: str) -> None:
    _Ticks.failed_in_row += 1
    _Ticks.last_failure = reason[:300]


def tick_health() -> tuple[int, str | None]:
    """(ticks failed in a row, the last failure)."""
    return _Ticks.failed_in_row, _Ticks.last_failure


def tick_age() -> float:
    """Seconds since the last scheduler tick (infinite before the first)."""
    return time.time() - _Ticks.last if _Ticks.last else float("inf")
