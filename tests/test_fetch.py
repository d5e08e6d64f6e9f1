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

from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream
from tests.conftest import FeedServer


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
    keepalive_server: tuple[str, list[int]],
) -> None:
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

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> None:
        self.asked.append(fullname)


def test_a_fetch_looks_for_no_module_once_warm(keepalive_server: tuple[str, list[int]]) -> None:
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


def _fetch(url: str, **request: str) -> FetchResult:
    async def run() -> list[FetchResult]:
        return [r async for r in fetch_stream([FetchRequest(1, url, **request)], FetchOptions())]

    return asyncio.run(run())[0]


@pytest.mark.parametrize(
    ("chain", "moved"),
    [([301], True), ([308, 301], True), ([302], False), ([301, 307], False), ([303, 308], False)],
)
def test_redirects_are_followed_and_only_an_all_permanent_chain_moves_the_feed(
    feed_server: FeedServer, chain: list[int], moved: bool
) -> None:
    """The first hop is answered by the transport, the rest by the client: either way the
    document arrives, validators travel along, and a relative Location is resolved."""
    target = feed_server.serve("/final.xml", "<rss version='2.0'><channel/></rss>")
    previous = "/final.xml"
    for n, status in reversed(list(enumerate(chain))):
        location = previous if n else feed_server.url(previous)  # relative, then absolute
        feed_server.serve(
            f"/hop{n}.xml",
            "",
            status=status,
            content_type="text/plain",
            headers={"Location": location},
        )
        previous = f"/hop{n}.xml"
    result = _fetch(feed_server.url(previous), etag='"old"')
    assert (result.status, result.error) == (200, None)
    assert result.body is not None and b"<rss" in result.body
    assert result.permanent_url == (target if moved else None)
    assert [r["path"] for r in feed_server.requests] == [
        *(f"/hop{n}.xml" for n in range(len(chain))),
        "/final.xml",
    ]
    assert {r["headers"].get("If-None-Match") for r in feed_server.requests} == {'"old"'}


def test_a_feed_that_does_not_redirect_has_no_new_address(feed_server: FeedServer) -> None:
    url = feed_server.serve("/plain.xml", "<rss version='2.0'><channel/></rss>")
    result = _fetch(url)
    assert (result.status, result.permanent_url) == (200, None)


def test_a_malformed_redirect_location_is_that_feeds_error(feed_server: FeedServer) -> None:
    url = feed_server.serve(
        "/bad.xml", "", status=302, content_type="text/plain", headers={"Location": "http://[::1"}
    )
    result = _fetch(url)
    assert result.status is None and "redirect" in (result.error or ""), result


def test_a_redirect_chain_stops_at_ten_hops(feed_server: FeedServer) -> None:
    for n in range(12):
        feed_server.serve(
            f"/r{n}.xml",
            "",
            status=302,
            content_type="text/plain",
            headers={"Location": f"/r{n + 1}.xml"},
        )
    feed_server.serve("/r12.xml", "<rss version='2.0'><channel/></rss>")
    assert _fetch(feed_server.url("/r2.xml")).status == 200  # ten hops: fine
    feed_server.requests.clear()
    assert _fetch(feed_server.url("/r1.xml")).error == "too many redirects"
    assert len(feed_server.requests) == 11  # the first and ten more, then it gave up


def test_a_proxy_from_the_environment_carries_every_request(
    feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With HTTP_PROXY set, requests go to the proxy (here the local server, which sees
    the absolute address a proxy is asked for), redirects included."""
    feed_server.serve(
        "http://feeds.invalid/a.xml",
        "",
        status=301,
        content_type="text/plain",
        headers={"Location": "http://feeds.invalid/b.xml"},
    )
    feed_server.serve("http://feeds.invalid/b.xml", "<rss version='2.0'><channel/></rss>")
    monkeypatch.setenv("HTTP_PROXY", feed_server.url(""))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    result = _fetch("http://feeds.invalid/a.xml")
    assert (result.status, result.permanent_url) == (200, "http://feeds.invalid/b.xml")
    assert [r["path"] for r in feed_server.requests] == [
        "http://feeds.invalid/a.xml",
        "http://feeds.invalid/b.xml",
    ]


def test_absurd_freshness_headers_are_capped_not_trusted() -> None:
    import httpx

    from monitor.fetch import MAX_FRESHNESS, freshness

    assert freshness(httpx.Headers({"cache-control": "max-age=" + "9" * 40})) == MAX_FRESHNESS
    assert freshness(httpx.Headers({"cache-control": 'max-age="600"'})) == 600
    assert freshness(httpx.Headers({"cache-control": "max-age=-5"})) is None
    far = {"expires": "Fri, 31 Dec 9999 23:59:59 GMT", "date": "Mon, 01 Jan 0001 00:00:00 GMT"}
    assert freshness(httpx.Headers(far)) == MAX_FRESHNESS
    assert freshness(httpx.Headers({"expires": "never, garbage"})) is None
