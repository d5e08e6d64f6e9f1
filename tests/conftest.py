"""Shared fixtures: real databases (SQLite, PostgreSQL), a local feed server, a webhook sink.

PostgreSQL tests run when MONITOR_TEST_POSTGRES names a server URL (e.g.
postgresql+psycopg://postgres@127.0.0.1:5432/test); each test gets a fresh database there.
CI sets it and MONITOR_REQUIRE_POSTGRES=1, which turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from monitor.db import Database

# The workplace's shared corpus beside the checkout (../shared): real feeds and other
# parsers' test documents. Tests read them from there, and skip when it is absent.
SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
REAL_FEEDS = SHARED / "corpus" / "real-feeds"


def real_feed(name: str) -> bytes:
    """A document of the shared real-feed corpus (the test skips without the corpus)."""
    path = REAL_FEEDS / name
    if not path.exists():
        pytest.skip(f"the shared corpus is absent ({path})")
    return path.read_bytes()


PG_ENV = "MONITOR_TEST_POSTGRES"


def _postgres_server() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("MONITOR_REQUIRE_POSTGRES"):
            pytest.fail(f"{PG_ENV} is not set but MONITOR_REQUIRE_POSTGRES=1")
        pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql+psycopg://user@host:port/db")
    return url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    server = _postgres_server()
    assert server is not None
    name = f"monitor_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{(tmp_path / 'monitor.db').as_posix()}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that uses it runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{(tmp_path / 'monitor.db').as_posix()}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    db.upgrade()
    yield db
    db.dispose()


class Clock:
    """A controllable clock: tests move time instead of sleeping."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def clock() -> Clock:
    return Clock()


# ------------------------------------------------------------------ servers --


@dataclass
class Route:
    body: bytes
    content_type: str = "application/rss+xml; charset=utf-8"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering (a slow server)


class FeedServer:
    """Serves registered paths on 127.0.0.1 with ETag validators (304 on a match)."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append({"path": self.path, "headers": dict(self.headers)})
                route = server.routes.get(self.path)
                if route is None:
                    self.send_error(404)
                    return
                if route.delay:
                    time.sleep(route.delay)
                etag = f'"{abs(hash(route.body)):x}"'
                if route.status == 200 and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.end_headers()
                    return
                self.send_response(route.status)
                for k, v in route.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                if route.status == 200:
                    self.send_header("ETag", etag)
                self.end_headers()
                self.wfile.write(route.body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def serve(self, path: str, body: bytes | str, **kw: Any) -> str:
        data = body.encode("utf-8") if isinstance(body, str) else body
        self.routes[path] = Route(data, **kw)
        return self.url(path)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    s = FeedServer()
    yield s
    s.close()


class WebhookSink:
    """Records JSON POSTs; `responses` scripts status codes for the next requests."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.responses: list[tuple[int, dict[str, str]]] = []
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers = sink.responses.pop(0) if sink.responses else (200, {})
                sink.received.append(
                    {
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "raw": raw,
                        "body": json.loads(raw),
                        "status": status,
                    }
                )
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def accepted(self) -> list[dict[str, Any]]:
        return [r for r in self.received if 200 <= r["status"] < 300]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def webhook_sink() -> Iterator[WebhookSink]:
    s = WebhookSink()
    yield s
    s.close()


def rss(
    items: list[dict[str, str]], title: str = "Test Feed", link: str = "https://news.example.org/"
) -> str:
    """A small RSS 2.0 document; each item may have title, link, guid, description, pubDate."""
    from xml.sax.saxutils import escape

    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<rss version="2.0"><channel>',
        f"<title>{escape(title)}</title><link>{escape(link)}</link><description>test</description>",
    ]
    for it in items:
        parts.append("<item>")
        for tag in ("title", "link", "guid", "description", "pubDate"):
            if tag in it:
                parts.append(f"<{tag}>{escape(it[tag])}</{tag}>")
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts)
