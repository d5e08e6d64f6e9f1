"""Fetching: conditional requests on kept-alive connections."""

from __future__ import annotations

import asyncio
import importlib.abc
import sys
import threading
import types
from collections.abc import Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitor.fetch import FetchOptions, FetchRequest, fetch_stream


@pytest.fixture
def keepalive_server() -> Iterator[tuple[str, list[int]]]:
    """An HTTP/1.1 server answering 304 to a matching ETag; records each request's client
    port, so reused connections show as repeated ports."""
    ports: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            ports.append(self.client_address[1])
            unchanged = self.headers.get("If-None-Match") == '"v1"'
            body = b"" if unchanged else b"<rss version='2.0'><channel></channel></rss>"
            self.send_response(304 if unchanged else 200)
            self.send_header("ETag", '"v1"')
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", ports
    httpd.shutdown()
    httpd.server_close()


def test_not_modified_answers_keep_the_connection_alive(
        keepalive_server: tuple[str, list[int]]) -> None:
    base, ports = keepalive_server
    requests = [FetchRequest(i, f"{base}/{i}.xml", etag='"v1"') for i in range(5)]

    async def run() -> list[int | None]:
        opts = FetchOptions(concurrency=1, per_host=1)
        return [r.status async for r in fetch_stream(requests, opts)]

    assert asyncio.run(run()) == [304] * 5
    assert len(set(ports)) == 1, ports  # one connection for all five


class _ImportRecorder(importlib.abc.MetaPathFinder):
    """Records every module the import system is asked to find (it finds none itself)."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: types.ModuleType | None = None) -> None:
        self.asked.append(fullname)


def test_a_fetch_looks_for_no_module_once_warm(
        keepalive_server: tuple[str, list[int]]) -> None:
    """httpcore asks sniffio which event loop runs whenever it makes a lock; were sniffio
    missing, every ask would be a failed import (a search of sys.path, never cached),
    about a third of a fetch's CPU. After a first poll, fetching imports nothing."""
    base, _ = keepalive_server
    requests = [FetchRequest(i, f"{base}/{i}.xml", etag='"v1"') for i in range(5)]

    async def run() -> list[int | None]:
        return [r.status async for r in fetch_stream(requests, FetchOptions())]

    assert asyncio.run(run()) == [304] * 5  # loads what fetching needs
    recorder = _ImportRecorder()
    sys.meta_path.insert(0, recorder)
    try:
        assert asyncio.run(run()) == [304] * 5
    finally:
        sys.meta_path.remove(recorder)
    assert recorder.asked == []
