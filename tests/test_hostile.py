"""Hostile feeds: each gives a clear per-feed error or a sanitized entry, never a crash."""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream
from monitor.normalize import normalize_entry
from monitor.parse import ParseError, parse_feed
from tests.conftest import FeedServer, rss


def fetch(url: str, **opts: Any) -> FetchResult:
    async def go() -> FetchResult:
        results = [r async for r in fetch_stream([FetchRequest(1, url)], FetchOptions(**opts))]
        return results[0]

    return asyncio.run(go())


def test_gzip_bomb_is_cut_off_while_streaming(feed_server: FeedServer) -> None:
    bomb = gzip.compress(b"<rss>" + b" " * (64 * 2**20))  # 64 MiB inflating from ~64 KiB
    url = feed_server.serve("/bomb.xml", bomb, headers={"Content-Encoding": "gzip"})
    r = fetch(url, max_body=2**20)
    assert r.body is None and "cap" in (r.error or "")


def test_nested_encodings_are_capped_as_each_layer_decodes(feed_server: FeedServer) -> None:
    """`Content-Encoding: gzip, gzip`: a few hundred bytes on the wire that inflate to
    512 MiB. The cap must hold on the decoded bytes as they decode, so the fetch never holds
    more than the cap and a few chunks (measured by tracemalloc: bytes objects count)."""
    import tracemalloc

    inner = gzip.compress(b"\0" * (512 * 2**20), compresslevel=9)
    url = feed_server.serve(
        "/nested.xml",
        gzip.compress(inner, compresslevel=9),
        headers={"Content-Encoding": "gzip, gzip"},
    )
    tracemalloc.start()
    try:
        r = fetch(url, max_body=2**20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.error_kind == "too-large" and r.body is None
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB while decoding"
    # a good document gzipped twice is read; three layers or an unknown coding are refused
    doc = rss([])
    twice = feed_server.serve(
        "/twice.xml",
        gzip.compress(gzip.compress(doc.encode())),
        headers={"Content-Encoding": "gzip, gzip"},
    )
    assert fetch(twice).body == doc.encode()
    thrice = feed_server.serve(
        "/thrice.xml",
        gzip.compress(gzip.compress(gzip.compress(doc.encode()))),
        headers={"Content-Encoding": "gzip, gzip, gzip"},
    )
    assert "content encodings stacked" in (fetch(thrice).error or "")
    odd = feed_server.serve("/odd.xml", doc, headers={"Content-Encoding": "compress"})
    assert "unsupported content encoding" in (fetch(odd).error or "")


def test_oversize_body_is_refused(feed_server: FeedServer) -> None:
    url = feed_server.serve("/big.xml", b"x" * (3 * 2**20))
    r = fetch(url, max_body=2**20)
    assert r.body is None and "cap" in (r.error or "")


def test_redirect_loop_is_an_error(feed_server: FeedServer) -> None:
    url = feed_server.serve(
        "/loop.xml", "", status=302, content_type="text/plain", headers={"Location": "/loop.xml"}
    )
    assert "redirects" in (fetch(url).error or "")


def test_slow_drip_server_hits_the_total_deadline() -> None:
    class Drip(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "100000")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"<")
                    self.wfile.flush()
                    time.sleep(0.2)  # every byte is in time for a read timeout
            except OSError:
                pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        from datetime import timedelta

        r = fetch(f"http://127.0.0.1:{httpd.server_address[1]}/", timeout=timedelta(seconds=1))
        assert "timed out" in (r.error or "")
        assert time.monotonic() - started < 5
    finally:
        httpd.shutdown()


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
<!ENTITY g "&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;"><!ENTITY h "&g;&g;&g;&g;&g;&g;&g;&g;&g;&g;">]>
<rss version="2.0"><channel><title>t</title><item><title>&h;</title></item></channel></rss>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE rss [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<rss version="2.0"><channel><title>t</title><item><title>a&x;b</title>
<link>https://e.example/1</link></item></channel></rss>"""


def test_entity_bomb_does_not_expand() -> None:
    started = time.monotonic()
    try:
        feed = parse_feed(BILLION_LAUGHS, "https://e.example/feed")
        assert all(len(e.title) < 10_000 for e in feed.entries)
    except ParseError:
        pass
    assert time.monotonic() - started < 5


def test_external_entities_are_not_read() -> None:
    try:
        feed = parse_feed(EXTERNAL, "https://e.example/feed")
    except ParseError:
        return
    assert all("root:" not in e.title for e in feed.entries)


def test_active_content_is_sanitized_end_to_end() -> None:
    from datetime import UTC, datetime

    body = rss(
        [
            {
                "title": "Hi <script>alert(1)</script>",
                "link": "https://e.example/1",
                "description": '<p onclick="x()">Text<iframe src="https://evil/"></iframe>'
                '<img src="https://tracker/p.gif"><script>steal()</script></p>',
            }
        ]
    )
    entry = parse_feed(body.encode(), "https://e.example/feed").entries[0]
    a = normalize_entry(entry, "https://e.example/feed", None, datetime.now(UTC))
    for bad in ("<script", "onclick", "<iframe", "<img", "steal()"):
        assert bad not in a.summary_html
        assert bad not in a.text
    assert "Text" in a.text


@pytest.mark.parametrize(
    "junk",
    [
        b"\x00\xff" * 1000,
        b"<rss><channel><item><title>x",
        b"<?xml version='1.0' encoding='bogus-42'?><rss/>",
    ],
)
def test_garbage_gives_a_parse_error_or_entries(junk: bytes) -> None:
    try:
        feed = parse_feed(junk, "https://e.example/feed")
    except ParseError as exc:
        assert str(exc)  # a message for the feed's last_error
    else:
        assert isinstance(feed.entries, list)


BAD_ADDRESSES = [
    "http://feeds.example:port/rss",
    "http://[::1/rss",
    "http://256.1.1.1/rss",
    "http://[zz::1]/rss",
    "http://feeds.example:99999/rss",
    "http:///rss",
]


@pytest.mark.parametrize("url", BAD_ADDRESSES)
def test_an_address_the_client_cannot_use_is_refused_on_the_way_in(url: str) -> None:
    from monitor.config import FeedConfig

    with pytest.raises(ValueError, match="feed url"):
        FeedConfig(url=url)


def test_a_stored_bad_address_fails_that_feed_and_the_rest_are_fetched(
    feed_server: FeedServer,
) -> None:
    good = feed_server.serve("/good.xml", rss([]))

    async def go() -> list[FetchResult]:
        reqs = [FetchRequest(i, u) for i, u in enumerate([*BAD_ADDRESSES, good])]
        return [r async for r in fetch_stream(reqs, FetchOptions())]

    results = {r.url: r for r in asyncio.run(go())}
    assert results[good].ok
    assert all(results[u].error for u in BAD_ADDRESSES), results
    # those the client cannot even parse say so; the others fail to connect
    assert all(results[u].error_kind == "bad-url" for u in BAD_ADDRESSES[:4]), results


def test_deeply_nested_markup_keeps_its_text_and_loses_its_tags() -> None:
    """Sanitizing is quadratic in nesting depth inside html5ever: markup nested deeper than
    normalize.MAX_DEPTH keeps only its text (linear work), ordinary markup is untouched."""
    from monitor.normalize import MAX_DEPTH, html_to_text, sanitize_html, tame

    ordinary = "<p>Talks <b>resumed</b> in <a href='https://x.example/'>Vienna</a>.</p>" * 50
    assert tame(ordinary) == ordinary
    deep = "<div>" * (MAX_DEPTH + 1) + "the text" + "</div>" * (MAX_DEPTH + 1)
    assert "<div>" not in tame(deep) and "the text" in tame(deep)
    assert html_to_text(deep) == "the text" and "<div" not in sanitize_html(deep)


def test_a_feed_of_hostile_nesting_is_processed_without_hanging(tmp_path: Any) -> None:
    """200,000 nested elements in an entry (4 MB): read in well under the guard's minute
    (before the bound it took minutes). A hang guard, not a speed test."""
    import subprocess
    import sys

    script = """
import html
from datetime import UTC, datetime
from monitor.match import Matcher, load_profile
from monitor.prepare import prepare
deep = "<div>" * 200_000 + "Sochi talks" + "</div>" * 200_000
doc = ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
       '<item><title>a</title><link>https://a.example/1</link><description>'
       + html.escape(deep) + '</description></item></channel></rss>').encode()
p = prepare(doc, "https://a.example/f", None, "https://a.example/f", datetime.now(UTC),
            Matcher(load_profile()), {})
print(p.error, len(p.quiet.rows) + len(p.articles))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.split() == ["None", "1"]
