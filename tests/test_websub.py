"""WebSub: a feed that names a hub is subscribed through it (the intent confirmed to the
hub), and a signed push is processed at once: the alert comes from the push, not from a
poll an hour later. A local hub of the project's own drives it; and the pure parts alone."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx

from monitor.websub import discover, signature_ok
from tests.conftest import FeedServer, WebhookSink, rss
from tests.test_cli import config, start_service

HUB_LINKS = '<atom:link rel="hub" href="{hub}"/><atom:link rel="self" href="{me}"/>'


def test_a_documents_hub_and_own_address_are_found_at_its_top() -> None:
    atom = b'<feed xmlns="http://www.w3.org/2005/Atom"><link href="https://h.example/"'
    atom += b' rel="hub"/><link rel="self" href="https://p.example/feed"/></feed>'
    assert discover(atom) == ("https://h.example/", "https://p.example/feed")
    both = b"<rss><channel><atom:link rel='self hub' href='https://x.example/'/></channel></rss>"
    assert discover(both) == ("https://x.example/", "https://x.example/")
    assert discover(b'<link rel="hub" href="/relative"/><link rel="hub" href="javascript:x"/>') == (
        None,
        None,
    )
    late = b"<rss>" + b" " * 20_000 + b'<atom:link rel="hub" href="https://h.example/"/>'
    assert discover(late) == (None, None)  # only the document's top is read
    assert discover(b"") == (None, None)


def test_a_push_is_taken_only_with_the_subscriptions_signature() -> None:
    body = b"<rss/>"
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature_ok("s3cret", body, good)
    assert signature_ok("s3cret", body, "sha1=" + hmac.new(b"s3cret", body, "sha1").hexdigest())
    assert not signature_ok("other", body, good)
    assert not signature_ok("s3cret", body + b" ", good)
    for bad in (None, "", "sha256", "md5=abc", "sha256=zz"):
        assert not signature_ok("s3cret", body, bad)


class Hub:
    """A WebSub hub: takes subscriptions, confirms each with its subscriber (a challenge
    the subscriber must echo), and pushes documents signed with the subscriber's secret."""

    def __init__(self) -> None:
        self.subscriptions: dict[str, dict[str, str]] = {}  # topic → the request's fields
        self.confirmed: dict[str, bool] = {}
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()
                threading.Thread(target=hub.confirm, args=(form,), daemon=True).start()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def confirm(self, form: dict[str, str]) -> None:
        topic, challenge = form["hub.topic"], secrets.token_hex(8)
        query = {
            "hub.mode": form["hub.mode"],
            "hub.topic": topic,
            "hub.challenge": challenge,
            "hub.lease_seconds": "3600",
        }
        r = httpx.get(form["hub.callback"] + "?" + urlencode(query), timeout=10)
        self.subscriptions[topic] = form
        self.confirmed[topic] = r.status_code == 200 and r.text == challenge

    def publish(self, topic: str, body: bytes, secret: str | None = None) -> int:
        form = self.subscriptions[topic]
        key = (secret or form["hub.secret"]).encode()
        signature = "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()
        r = httpx.post(
            form["hub.callback"],
            content=body,
            headers={"Content-Type": "application/rss+xml", "X-Hub-Signature": signature},
            timeout=10,
        )
        return r.status_code

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_for(what: Any, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := what()):
        assert time.monotonic() < deadline, "waited too long"
        time.sleep(0.05)
    return found


def alerted_urls(sink: WebhookSink) -> set[str]:
    return {a["url"] for r in sink.accepted for a in r["body"].get("articles", [])}


def document(hub: Hub, me: str, items: list[dict[str, str]]) -> str:
    body = rss(items)
    links = HUB_LINKS.format(hub=hub.url, me=me)
    return body.replace("<rss ", '<rss xmlns:atom="http://www.w3.org/2005/Atom" ', 1).replace(
        "<channel>", "<channel>" + links, 1
    )


def test_a_hub_pushes_an_update_and_it_alerts_at_once(
    tmp_path: Path, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    import signal
    import socket

    hub = Hub()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    first = {
        "title": "Putin hosts Israel's prime minister for talks on Syria",
        "link": "https://a.example/talks",
        "description": "The Russian president and the Israeli prime minister talked for hours.",
    }
    url = feed_server.url("/pushed.xml")
    feed_server.serve("/pushed.xml", document(hub, url, [first]))
    cfg = config(
        tmp_path,
        [],
        webhook_sink.url,
        extra=f'[service]\nlisten = ""\n[web]\nlisten = "127.0.0.1:{port}"\n'
        f'[websub]\ncallback = "http://127.0.0.1:{port}/websub"\n'
        f'[[feeds]]\nurl = "{url}"\ninterval = "1h"\n',
    )
    proc, log_path = start_service(cfg, tmp_path)
    try:
        wait_for(lambda: "https://a.example/talks" in alerted_urls(webhook_sink))
        wait_for(lambda: hub.confirmed.get(url), 60)  # subscribed, the intent confirmed
        news = {
            "title": "Israeli jets strike an Iranian weapons depot near Damascus",
            "link": "https://a.example/strike",
            "description": "Syrian state media said Israeli missiles hit an Iran-linked depot.",
        }
        pushed = document(hub, url, [news, first]).encode()
        # A forged push (another secret) is received and ignored.
        assert hub.publish(url, pushed, secret="forged") == 202
        time.sleep(1.0)
        assert "https://a.example/strike" not in alerted_urls(webhook_sink)
        sent = time.monotonic()
        assert hub.publish(url, pushed) == 202
        wait_for(lambda: "https://a.example/strike" in alerted_urls(webhook_sink), 30)
        latency = time.monotonic() - sent
        print(f"WebSub push to alert: {latency:.2f} s")  # the feed's next poll is an hour away
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
        hub.close()
    log = log_path.read_text()
    assert "names the WebSub hub" in log and "is pushed by" in log
    assert "a push for feed" in log and "wrong signature" in log


def test_subscriptions_are_asked_once_confirmed_then_renewed_before_they_end(database: Any) -> None:
    import asyncio
    from datetime import UTC, datetime, timedelta

    from monitor.config import Settings
    from monitor.hubs import subscribe_due, verify
    from monitor.models import Feed

    hub = Hub()
    hub.confirm = lambda form: hub.subscriptions.__setitem__(form["hub.topic"], form)  # type: ignore[method-assign]
    settings = Settings(websub={"callback": "http://127.0.0.1:9/websub"})
    now = datetime(2026, 3, 1, tzinfo=UTC)
    with database.session() as s:
        feed = Feed(
            url="https://p.example/feed", websub_hub=hub.url, websub_topic="https://p.example/feed"
        )
        s.add(feed)
        s.flush()
        feed_id = feed.id
    try:
        assert asyncio.run(subscribe_due(settings, database, now)) == 1
        asked = wait_for(lambda: hub.subscriptions.get("https://p.example/feed"))
        assert asked["hub.callback"] == f"http://127.0.0.1:9/websub/{feed_id}"
        assert asked["hub.mode"] == "subscribe" and len(asked["hub.secret"]) == 64
        assert asyncio.run(subscribe_due(settings, database, now)) == 0  # pending: wait
        later = now + timedelta(minutes=11)
        assert asyncio.run(subscribe_due(settings, database, later)) == 1  # unconfirmed: again
        assert not verify(database, feed_id, "subscribe", "https://other.example/", "3600", later)
        assert verify(database, feed_id, "subscribe", "https://p.example/feed", "3600", later)
        assert asyncio.run(subscribe_due(settings, database, later + timedelta(minutes=40))) == 0
        renew = later + timedelta(minutes=49)  # four fifths of the hour granted
        assert asyncio.run(subscribe_due(settings, database, renew)) == 1
        off = Settings()
        assert asyncio.run(subscribe_due(off, database, renew + timedelta(days=9))) == 0
    finally:
        hub.close()


def test_websub_needs_the_desk_served(tmp_path: Path) -> None:
    import pytest

    from monitor.config import ConfigError, load_settings

    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[web]\nlisten = ""\n[websub]\ncallback = "https://m.example/websub"\n')
    with pytest.raises(ConfigError, match="hubs push to the desk"):
        load_settings(cfg)
    cfg.write_text('[websub]\ncallback = "ftp://m.example/"\n')
    with pytest.raises(ConfigError, match="http"):
        load_settings(cfg)
    cfg.write_text('[websub]\ncallback = "https://m.example/websub/"\n')
    assert load_settings(cfg).websub.callback == "https://m.example/websub"
