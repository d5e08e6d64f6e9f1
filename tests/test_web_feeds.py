"""Feeds from the desk: added after a test fetch that says what it found, paused and
resumed, removed after a question, imported and exported as OPML, through the pages and
the API; the config file's feeds are shown but changed only there (SQLite and
PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from sqlalchemy import func, select

from monitor.models import Entry, Feed
from tests import test_web
from tests.conftest import FeedServer, rss
from tests.test_pipeline import RELEVANT, item
from tests.test_web import Desktop, csrf_of, post

desktop = test_web.desktop  # the desk over a polled database, as the fixture of this module


def feed_row(desk: Desktop, url: str) -> Feed | None:
    with desk.pipeline.db.session() as s:
        row = s.scalar(select(Feed).where(Feed.url == url))
        if row is not None:
            s.expunge(row)
        return row


def test_a_feed_is_added_after_a_test_fetch_then_paused_resumed_and_removed(
    desktop: Desktop, feed_server: FeedServer
) -> None:
    page = desktop.get("/feeds").text
    token = csrf_of(page)
    story = item(RELEVANT, "https://new.example/talks", datetime.now(UTC))
    url = feed_server.serve("/new.xml", rss([story], title="A <b>new</b> outlet"))
    added = post(desktop, "/feeds", csrf=token, url=url, name="New outlet", interval="15m")
    assert added.status_code == 201
    assert "added " + url in added.text and "1 entries" in added.text
    assert "A &lt;b&gt;new&lt;/b&gt; outlet" in added.text  # what it found, as text
    row = feed_row(desktop, url)
    assert row is not None and (row.origin, row.interval_seconds, row.enabled) == ("web", 900, True)

    again = post(desktop, "/feeds", csrf=token, url=url)
    assert again.status_code == 409 and "already watched" in again.text
    bad = post(desktop, "/feeds", csrf=token, url="ftp://files.example/feed")
    assert bad.status_code == 422 and "not added" in bad.text
    assert post(desktop, "/feeds", csrf="0" * 64, url=url + "?x").status_code == 403
    dead = feed_server.serve("/dead.xml", "<html>not a feed</html>", content_type="text/html")
    kept = post(desktop, "/feeds", csrf=token, url=dead)
    assert kept.status_code == 201 and "retried on its schedule" in kept.text

    paused = post(desktop, f"/feeds/{row.id}/pause", csrf=token)
    assert paused.status_code == 303 and feed_row(desktop, url).enabled is False  # type: ignore[union-attr]
    assert "paused" in desktop.get("/feeds").text
    asyncio.run(desktop.pipeline.poll(only_due=False))  # a paused feed is not polled
    with desktop.pipeline.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry).where(Entry.feed_id == row.id)) == 0
    post(desktop, f"/feeds/{row.id}/resume", csrf=token)
    asyncio.run(desktop.pipeline.poll())  # resumed: due at once
    with desktop.pipeline.db.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry).where(Entry.feed_id == row.id)) == 1

    question = desktop.get(f"/feeds/{row.id}/remove").text
    assert "1 entry it brought will be deleted" in question
    removed = post(desktop, f"/feeds/{row.id}/remove", csrf=csrf_of(question))
    assert removed.status_code == 200 and "removed " + url in removed.text
    assert feed_row(desktop, url) is None


def test_the_config_files_feeds_are_changed_only_there(desktop: Desktop) -> None:
    page = desktop.get("/feeds").text
    config_feed = feed_row(desktop, desktop.feeds[0])
    assert config_feed is not None and config_feed.origin == "config"
    for action in ("pause", "remove"):
        r = post(desktop, f"/feeds/{config_feed.id}/{action}", csrf=csrf_of(page))
        assert r.status_code == 409 and "config file" in r.json()["detail"]
    assert feed_row(desktop, desktop.feeds[0]).enabled is True  # type: ignore[union-attr]
    assert post(desktop, "/feeds/99999/pause", csrf=csrf_of(page)).status_code == 404


def test_opml_goes_out_and_comes_in(desktop: Desktop, feed_server: FeedServer) -> None:
    exported = desktop.get("/feeds.opml")
    assert exported.headers["content-type"].startswith("text/x-opml")
    for url in desktop.feeds:
        assert url in exported.text
    fresh = [feed_server.serve(f"/opml{n}.xml", rss([])) for n in range(2)]
    outline = "".join(
        f'<outline type="rss" text="o{n}" xmlUrl="{u}"/>' for n, u in enumerate(fresh)
    )
    document = (
        f'<?xml version="1.0"?><opml version="2.0"><body>{outline}'
        f'<outline xmlUrl="{desktop.feeds[0]}"/><outline xmlUrl="javascript:alert(1)"/>'
        "</body></opml>"
    )
    token = csrf_of(desktop.get("/feeds").text)
    r = httpx.post(
        desktop.url + "/feeds/import",
        data={"csrf": token},
        files={"opml": ("feeds.opml", document.encode(), "text/x-opml")},
        timeout=10,
    )
    assert r.status_code == 200
    assert "4 feeds, 2 added, 2 skipped" in r.text and "javascript:alert(1)" in r.text
    assert all(feed_row(desktop, u) is not None for u in fresh)
    broken = httpx.post(
        desktop.url + "/feeds/import",
        data={"csrf": token},
        files={"opml": ("x.opml", b"<not opml", "text/x-opml")},
        timeout=10,
    )
    assert broken.status_code == 422 and "not imported" in broken.text


def test_the_api_adds_pauses_and_removes_feeds(desktop: Desktop, feed_server: FeedServer) -> None:
    url = feed_server.serve("/api.xml", rss([]))
    api = httpx.Client(base_url=desktop.url, timeout=10)
    added = api.post("/api/feeds", json={"url": url, "name": "By API"})
    assert added.status_code == 201
    body = added.json()
    assert body["url"] == url and "found" in body["found"]
    assert api.post("/api/feeds", json={"url": url}).status_code == 409
    assert api.post("/api/feeds", json={"url": "not a url"}).status_code == 422
    assert api.post(f"/api/feeds/{body['id']}/pause").json()["enabled"] is False
    assert api.post(f"/api/feeds/{body['id']}/resume").json()["enabled"] is True
    assert api.delete(f"/api/feeds/{body['id']}").status_code == 204
    assert api.delete(f"/api/feeds/{body['id']}").status_code == 404
    spec = api.get("/api/openapi.json").json()["paths"]
    assert {"/api/feeds", "/api/feeds/{feed_id}", "/api/search"} <= set(spec)
