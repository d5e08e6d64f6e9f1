"""The web desk, served by uvicorn on loopback over a database a real poll filled: the
pages list, filter and open what was stored, the API and the Atom feed say the same, and
nothing a feed sent renders as markup (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser
import httpx
import pytest
from sqlalchemy import select

from monitor.cluster import EVIDENCE_WORDS
from monitor.config import ConfigError, Settings, load_settings
from monitor.db import Database
from monitor.models import Entry, Feed
from monitor.pipeline import Pipeline
from monitor.web.serve import Desk
from tests.conftest import Clock, FeedServer, WebhookSink, rss
from tests.test_pipeline import IRRELEVANT, OTHER_RELEVANT, RELEVANT, item

# What a hostile feed sends: markup in every field, a script link.
HOSTILE_TITLE = 'Putin and Israel\'s prime minister discuss Syria <script>alert("t")</script>'
HOSTILE_LINK = "javascript:alert(1)//https://evil.example/talks"
HOSTILE_OUTLET = "<img src=x onerror=alert(2)>Outlet"


@dataclass
class Desktop:
    url: str
    pipeline: Pipeline
    feeds: list[str]

    def get(self, path: str, **params: Any) -> httpx.Response:
        r = httpx.get(self.url + path, params=params, timeout=10)
        r.raise_for_status()
        return r

    def dev_of(self, url: str) -> int:
        """The development of the entry at `url`."""
        with self.pipeline.db.session() as s:
            dev = s.scalar(select(Entry.development_id).where(Entry.url == url))
            assert dev is not None, url
            return dev

    def stories(self) -> tuple[int, int]:
        """The talks' development and the strike's."""
        return self.dev_of("https://n0.example/talks"), self.dev_of("https://n1.example/strike")


def news(feed_server: FeedServer, clock: Clock) -> list[str]:
    """Six outlets: the talks told by three, the strike by two, local news by all, a
    hostile one, and a broken feed."""
    at = clock.now - timedelta(hours=1)
    urls = []
    for n in range(6):
        items = [item(IRRELEVANT, f"https://n{n}.example/local", at, title=f"Local news {n}")]
        if n in (0, 2, 4):
            items.append(item(RELEVANT, f"https://n{n}.example/talks", at))
        if n in (1, 3):
            items.append(item(OTHER_RELEVANT, f"https://n{n}.example/strike", at))
        urls.append(feed_server.serve(f"/{n}.xml", rss(items, title=f"Outlet {n}")))
    hostile = item(RELEVANT, "https://evil.example/talks", at, title=HOSTILE_TITLE)
    hostile["link"] = HOSTILE_LINK
    urls.append(feed_server.serve("/hostile.xml", rss([hostile], title="Hostile")))
    urls.append(feed_server.serve("/broken.xml", "<html>no feed</html>", content_type="text/html"))
    return urls


def start(settings: Settings, db: Database) -> Desk:
    desk = Desk(settings, db)
    assert desk.start(), "the desk did not start"
    return desk


@pytest.fixture
def desktop(
    db_url: str, feed_server: FeedServer, webhook_sink: WebhookSink, clock: Clock
) -> Iterator[Desktop]:
    feeds = news(feed_server, clock)
    settings = Settings(
        database={"url": db_url},
        service={"processes": 0},
        web={"listen": "127.0.0.1:0", "page_size": 1},
        feeds=[
            {"url": u, "name": HOSTILE_OUTLET if "hostile" in u else f"Outlet {k}"}
            for k, u in enumerate(feeds)
        ],
        channels=[{"type": "webhook", "url": webhook_sink.url, "name": "desk-hook"}],
    )
    db = Database(db_url)
    db.upgrade()
    p = Pipeline(settings, db, clock=clock)
    p.sync_feeds()
    asyncio.run(p.poll())
    asyncio.run(p.deliver_due())
    desk = start(settings, db)
    port = desk.server.servers[0].sockets[0].getsockname()[1]
    yield Desktop(f"http://127.0.0.1:{port}", p, feeds)
    desk.stop()
    p.close()
    db.dispose()


def test_the_developments_page_lists_filters_and_pages_what_was_found(desktop: Desktop) -> None:
    talks, strike = desktop.stories()
    api = desktop.get("/api/developments").json()
    assert api["total"] == 2  # the two stories; local news is off topic
    by_id = {d["id"]: d for d in api["developments"]}
    assert (by_id[talks]["reports"], by_id[talks]["outlets"]) == (4, 4)  # three and hostile
    assert (by_id[strike]["reports"], by_id[strike]["outlets"]) == (2, 2)
    assert by_id[talks]["alert_id"] and by_id[talks]["state"] == "alerted"

    page = desktop.get("/", state="alerted").text + desktop.get("/", page=2).text
    assert f'href="/developments/{talks}"' in page and f'href="/developments/{strike}"' in page
    assert "<svg" in page and "developments per day by topic" in page
    # A title filter, an outlet filter, a topic that matches nothing.
    assert f"/developments/{strike}" not in desktop.get("/", q="Kremlin").text
    with desktop.pipeline.db.session() as s:
        outlet1 = s.scalar(select(Feed.id).where(Feed.name == "Outlet 1"))
    only = desktop.get("/api/developments", outlet=outlet1).json()["developments"]
    assert [d["id"] for d in only] == [strike]
    assert desktop.get("/api/developments", topic="no-such-topic").json()["total"] == 0
    # The page's form sends every field, the empty ones too.
    empty = {"topic": "", "language": "", "since": "", "until": "", "state": "", "q": ""}
    assert f"/developments/{strike}" in desktop.get("/", outlet=outlet1, **empty).text
    future = desktop.get("/api/developments", since="2999-01-01").json()
    assert future["total"] == 0
    assert httpx.get(f"{desktop.url}/api/developments?since=soon").status_code == 422
    topic = by_id[strike]["topics"][0]
    narrowed = desktop.get("/api/developments", topic=topic).json()["developments"]
    assert strike in [d["id"] for d in narrowed]
    # Paging: one per page on this desk, newest first.
    first, second = desktop.get("/").text, desktop.get("/", page=2).text
    assert "page 1 of 2" in first and 'rel="next"' in first and 'rel="prev"' not in first
    assert "page 2 of 2" in second and 'rel="prev"' in second
    assert (f"/developments/{talks}" in first) != (f"/developments/{talks}" in second)
    one = desktop.get("/api/developments", size=1, page=2).json()
    assert (one["total"], len(one["developments"])) == (2, 1)


def test_a_development_page_shows_its_reports_evidence_and_deliveries(
    desktop: Desktop, webhook_sink: WebhookSink
) -> None:
    talks, _ = desktop.stories()
    page = desktop.get(f"/developments/{talks}").text
    for n in (0, 2, 4):
        assert f"https://n{n}.example/talks" in page and f"Outlet {n}" in page
    assert "desk-hook" in page and "delivered" in page
    # why each later report joined: how likely the join model found it and what moved
    # that most, the earlier report it is most like, and what they share
    assert page.count('<div class="why">belongs with probability') == 3
    assert "most like" in page and "similarity 1.00" in page and "shares entities: " in page
    # the model's reasons, in words, each with its part in the log-odds
    reason = "(" + "|".join(map(re.escape, EVIDENCE_WORDS.values())) + r") [+-]\d"
    assert len(re.findall(reason, page)) >= 3
    detail = desktop.get(f"/api/developments/{talks}").json()
    assert len(detail["reports"]) == 4
    assert all(r["matches"] and r["join_reason"] for r in detail["reports"])
    assert detail["development"]["id"] == talks and detail["development"]["reports"] == 4
    assert detail["alert_id"] in {r["body"]["id"] for r in webhook_sink.accepted}
    assert detail["deliveries"] == [
        {
            "channel": "desk-hook",
            "status": "delivered",
            "attempts": 1,
            "delivered_at": detail["deliveries"][0]["delivered_at"],
            "last_error": None,
        }
    ]
    assert httpx.get(f"{desktop.url}/developments/999999").status_code == 404


def test_the_feeds_page_shows_each_feeds_health(desktop: Desktop) -> None:
    page = desktop.get("/feeds").text
    assert "failing" in page and "/broken.xml" in page
    feeds = {f["url"]: f for f in desktop.get("/api/feeds").json()}
    broken = feeds[next(u for u in desktop.feeds if "broken" in u)]
    assert broken["error_count"] == 1 and broken["error_kind"] == "parse"
    assert feeds[desktop.feeds[0]]["entries"] == 2 and feeds[desktop.feeds[0]]["error_count"] == 0


def test_alerts_are_an_atom_feed_any_reader_can_follow(desktop: Desktop) -> None:
    spec = desktop.get("/api/openapi.json").json()
    api = {"/api/developments", "/api/developments/{dev_id}", "/api/feeds", "/api/alerts"}
    assert api <= set(spec["paths"]) and spec["openapi"].startswith("3.")
    talks, strike = desktop.stories()
    alerted = {d["development_id"]: d for d in desktop.get("/api/alerts").json()}
    assert set(alerted) == {talks, strike}
    doc = feedparser.parse(desktop.get("/alerts.atom").content)
    assert not doc.bozo and doc.version == "atom10"
    assert {e.link for e in doc.entries} == {f"{desktop.url}/developments/{d}" for d in alerted}
    assert {e.title for e in doc.entries} == {a["title"] for a in alerted.values()}
    topic = alerted[strike]["topics"][0]
    one = feedparser.parse(desktop.get("/alerts.atom", topic=topic).content)
    assert f"{desktop.url}/developments/{strike}" in {e.link for e in one.entries}
    assert all(topic in [t.term for t in e.tags] for e in one.entries)


def test_nothing_a_feed_sent_renders_as_markup(desktop: Desktop) -> None:
    """Markup in every field the pages show: what the poll stored from the hostile feed
    (its sanitizer already strips tags from titles), and, written over it as a sanitizer
    gap or an older version might have left them, raw tags in a title, a link, evidence,
    an error and an outlet name."""
    talks, _ = desktop.stories()
    with desktop.pipeline.db.session() as s:
        entry = s.scalar(select(Entry).join(Feed).where(Feed.url.like("%hostile.xml")))
        assert entry is not None and entry.development_id == talks
        assert entry.url is None or entry.url.startswith("https://")  # the poll's own check
        entry.title, entry.url = HOSTILE_TITLE, HOSTILE_LINK
        entry.language = "<b>en</b>"
        for m in entry.matches:
            m.evidence = ["<iframe src=//evil.example>", *m.evidence]
        broken = s.scalar(select(Feed).where(Feed.url.like("%broken.xml")))
        assert broken is not None
        broken.last_error = '<a href="javascript:alert(3)">click</a>'
    api = desktop.get("/api/developments")  # data as it is, never sniffed as a page
    assert api.headers["content-type"] == "application/json"
    assert api.headers["x-content-type-options"] == "nosniff"
    for path in ("/", "/?page=2", f"/developments/{talks}", "/feeds"):
        r = desktop.get(path)
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["x-content-type-options"] == "nosniff"
        html = r.text.lower()
        for tag in ("<script", "<img", "<iframe", "<b>en", 'href="javascript:'):
            assert tag not in html, (path, tag)
    page = desktop.get(f"/developments/{talks}").text
    assert "&lt;script&gt;alert(&#34;t&#34;)&lt;/script&gt;" in page  # there, as text
    assert "&lt;iframe src=//evil.example&gt;" in page
    assert "&lt;img src=x onerror=alert(2)&gt;Outlet" in page
    assert '<span class="title">Putin' in page  # a title, not a link
    assert "&lt;a href=&#34;javascript:alert(3)&#34;&gt;" in desktop.get("/feeds").text
    atom = desktop.get("/alerts.atom").text
    assert "<script" not in atom


def test_the_desk_is_served_on_this_machine_only_until_it_has_a_login(tmp_path: Any) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[web]\nlisten = "0.0.0.0:8080"\n')
    with pytest.raises(ConfigError, match="beyond this machine"):
        load_settings(cfg)
    cfg.write_text('[web]\nlisten = "8080"\n')
    with pytest.raises(ConfigError, match="host:port"):
        load_settings(cfg)
    for ok in ("127.0.0.1:8081", "localhost:8080", "[::1]:8080", ""):
        cfg.write_text(f'[web]\nlisten = "{ok}"\n')
        assert load_settings(cfg).web.listen == ok


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(url: str, seconds: float = 30) -> httpx.Response:
    deadline = time.monotonic() + seconds
    while True:
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            assert time.monotonic() < deadline, f"nothing answered at {url}"
            time.sleep(0.1)


def test_monitor_run_serves_the_desk_and_monitor_web_serves_it_alone(
    tmp_path: Any, feed_server: FeedServer
) -> None:
    import signal
    import socket
    import subprocess

    from tests.test_cli import MONITOR, STORY, config, start_service

    port = free_port()
    cfg = config(
        tmp_path,
        [feed_server.serve("/a.xml", rss(STORY))],
        extra=f'[service]\nlisten = ""\n[web]\nlisten = "127.0.0.1:{port}"',
    )
    proc, log_path = start_service(cfg, tmp_path)
    try:
        assert wait_for(f"http://127.0.0.1:{port}/feeds").status_code == 200
        deadline = time.monotonic() + 30
        while "/a.xml" not in httpx.get(f"http://127.0.0.1:{port}/feeds").text:
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
    assert f"web desk on http://127.0.0.1:{port}/" in log_path.read_text()

    with socket.socket() as busy:  # the desk's address taken: one clear line, exit 1
        busy.bind(("127.0.0.1", port))
        busy.listen()
        refused = subprocess.run(
            [*MONITOR, "--config", str(cfg), "web"], cwd=tmp_path, capture_output=True, text=True
        )
    assert refused.returncode == 1
    assert f"could not serve the web desk on 127.0.0.1:{port}" in refused.stderr

    web = subprocess.Popen(
        [*MONITOR, "--config", str(cfg), "web"], cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    try:
        developments = wait_for(f"http://127.0.0.1:{port}/api/developments").json()
        assert developments["total"] == 1  # the story the service stored
    finally:
        web.send_signal(signal.SIGINT)
        assert web.wait(timeout=30) == 0, web.stderr.read() if web.stderr else ""


def test_a_dead_letter_is_listed_and_sent_again_from_the_desk(
    desktop: Desktop, webhook_sink: WebhookSink
) -> None:
    from monitor.models import Alert, Delivery

    assert "No dead letters" in desktop.get("/dead-letters").text
    with desktop.pipeline.db.session() as s:
        delivery = s.scalars(select(Delivery)).first()
        assert delivery is not None
        delivery.status, delivery.attempts = "dead", 10
        delivery.last_error = "HTTP 410 <b>Gone</b>"
        alert = s.get(Alert, delivery.alert_id)
        assert alert is not None
        public_id = alert.public_id
    page = desktop.get("/dead-letters").text
    assert public_id in page and "after 10 attempts" in page and "&lt;b&gt;Gone" in page
    forged = post(desktop, f"/alerts/{public_id}/retry", csrf="0" * 64)
    assert forged.status_code == 403
    done = post(desktop, f"/alerts/{public_id}/retry", csrf=csrf_of(page))
    assert done.status_code == 303 and done.headers["location"] == "/dead-letters"
    assert "No dead letters" in desktop.get("/dead-letters").text
    sent = len(webhook_sink.accepted)
    # Due now, by the wall clock the desk keeps (the pipeline's is the test's).
    desktop.pipeline.clock.now = datetime.now(UTC) + timedelta(seconds=1)  # type: ignore[attr-defined]
    asyncio.run(desktop.pipeline.deliver_due())
    assert len(webhook_sink.accepted) == sent + 1
    assert webhook_sink.accepted[-1]["body"]["id"] == public_id  # the same alert, again
    assert post(desktop, "/alerts/nope/retry", csrf=csrf_of(page)).status_code == 404


def post(desk: Desktop, path: str, **form: Any) -> httpx.Response:
    return httpx.post(desk.url + path, data=form, follow_redirects=False, timeout=10)


def csrf_of(page: str) -> str:
    import re

    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
    assert found, "the page carries no form token"
    return found.group(1)


def searched(desk: Desktop, q: str) -> dict[str, Any]:
    """/api/search once the desk's indexer has caught up with what the poll stored."""
    deadline = time.monotonic() + 30
    while True:
        found: dict[str, Any] = desk.get("/api/search", q=q).json()
        if not found["not_indexed_yet"] or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_search_finds_stored_entries_on_topic_or_not(desktop: Desktop) -> None:
    talks, _ = desktop.stories()
    found = searched(desktop, "kremlin talk")
    assert found["not_indexed_yet"] == 0
    titles = {e["title"] for e in found["entries"]}
    assert titles == {"Putin and Israel's prime minister discuss Syria in Kremlin talks"}
    assert found["total"] == 3 and {e["development_id"] for e in found["entries"]} == {talks}
    local = searched(desktop, "lanes downtown")  # off topic, stored, searchable
    assert local["total"] == 6 and not any(e["relevant"] for e in local["entries"])
    page = desktop.get("/search", q="LANES down").text
    assert "6 entries" in page and "Local news " in page and "page 1 of 6" in page
    hostile = desktop.get("/search", q='<script>alert("q")</script> prime').text
    assert "<script>alert" not in hostile and "&lt;script&gt;" in hostile  # echoed as text
    assert "Nothing stored has all of these words" in desktop.get("/search", q="zzzz").text
    one = desktop.get(f"/api/entries/{found['entries'][0]['id']}").json()
    assert one["development_id"] == talks and one["relevant"] and one["matches"]
    assert "three hours of talks" in one["text"]
    assert httpx.get(desktop.url + "/api/entries/999999").status_code == 404
