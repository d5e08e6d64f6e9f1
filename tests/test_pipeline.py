"""End to end through the real pipeline: a local feed server, a local webhook receiver and a
real database (SQLite and PostgreSQL), with a controllable clock instead of sleeps."""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from monitor import refresh, store
from monitor.config import Settings
from monitor.db import Database
from monitor.fetch import FetchResult
from monitor.models import Alert, Delivery, Development, Entry, Feed
from monitor.pipeline import FEED_LEASE, Pipeline
from tests.conftest import Clock, FeedServer, WebhookSink, rss

RELEVANT = {
    "title": "Putin and Israel's prime minister discuss Syria in Kremlin talks",
    "description": "<p>The Russian president hosted the Israeli prime minister in Moscow for "
    "three hours of talks on Syria and Iran's nuclear programme.</p>",
}
OTHER_RELEVANT = {
    "title": "Israeli jets strike weapons depot near Damascus",
    "description": "Syrian state media said Israeli missiles hit an Iran-linked depot.",
}
IRRELEVANT = {
    "title": "City council approves new bicycle lanes",
    "description": "The plan adds 40 km of lanes downtown by next summer.",
}


def item(base: dict[str, str], url: str, at: datetime, **extra: str) -> dict[str, str]:
    return {
        **base,
        "link": url,
        "guid": extra.pop("guid", url),
        "pubDate": email.utils.format_datetime(at),
        **extra,
    }


def make(
    database: Database, clock: Clock, feeds: list[str], hook: str | None, **alerts: Any
) -> Pipeline:
    settings = Settings(
        database={"url": database.url},
        feeds=[{"url": u, "name": f"feed {i}"} for i, u in enumerate(feeds)],
        channels=[{"type": "webhook", "url": hook, "name": "hook"}] if hook else [],
        alerts={"retry_initial": "10s", **alerts},
    )
    p = Pipeline(settings, database, clock=clock)
    p.sync_feeds()
    return p


def cycle(p: Pipeline) -> None:
    asyncio.run(p.poll())
    asyncio.run(p.deliver_due())


def count(database: Database, model: type) -> int:
    with database.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_relevant_story_alerts_once_with_contract_payload(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    url = feed_server.serve(
        "/a.xml",
        rss([item(RELEVANT, "https://a.example/kremlin-talks", clock.now - timedelta(minutes=30))]),
    )
    p = make(database, clock, [url], webhook_sink.url)
    cycle(p)
    assert len(webhook_sink.accepted) == 1
    got = webhook_sink.accepted[0]
    body = got["body"]
    assert got["headers"]["webhook-id"] == body["id"]
    assert body["articles"][0]["url"] == "https://a.example/kremlin-talks"
    assert body["articles"][0]["source"] == "feed 0"
    assert {"url", "title", "source", "published"} <= set(body["articles"][0])
    assert "russia-israel" in [t["id"] for t in body["topics"]]
    assert body["topics"][0]["evidence"]

    clock.advance(timedelta(minutes=10))
    cycle(p)  # unchanged feed: the server answers 304
    assert len(webhook_sink.accepted) == 1
    assert feed_server.requests[-1]["headers"].get("If-None-Match")
    with database.session() as s:
        feed = s.scalars(select(Feed)).one()
        assert feed.last_status == 304 and feed.error_count == 0


def test_copies_and_updates_join_the_development_silently(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    t0 = clock.now - timedelta(minutes=20)
    a = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/talks", t0)]))
    b = feed_server.serve("/b.xml", rss([item(IRRELEVANT, "https://b.example/bikes", t0)]))
    p = make(database, clock, [a, b], webhook_sink.url)
    cycle(p)
    assert len(webhook_sink.accepted) == 1

    clock.advance(timedelta(hours=1))
    t1 = clock.now - timedelta(minutes=5)
    # Feed b now carries a syndicated copy (same text, other URL) and a tracking-URL copy;
    # feed a revises its story under the same guid.
    feed_server.serve(
        "/b.xml",
        rss(
            [
                item(IRRELEVANT, "https://b.example/bikes", t0),
                item(RELEVANT, "https://b.example/wire/talks", t1),
                item(
                    RELEVANT,
                    "https://a.example/talks?utm_source=rss&utm_medium=feed",
                    t1,
                    guid="b-copy-2",
                    title=RELEVANT["title"] + " (video)",
                ),
            ]
        ),
    )
    feed_server.serve(
        "/a.xml",
        rss(
            [
                item(
                    RELEVANT,
                    "https://a.example/talks",
                    t0,
                    title=RELEVANT["title"] + ", Kremlin says",
                    guid="https://a.example/talks",
                )
            ]
        ),
    )
    cycle(p)
    assert len(webhook_sink.accepted) == 1
    assert count(database, Development) == 1  # the story; the bicycle lanes are off-topic
    with database.session() as s:
        revised = s.scalars(select(Entry).where(Entry.url == "https://a.example/talks")).one()
        assert revised.revision == 2 and revised.title.endswith("Kremlin says")
        dev_ids = {e.development_id for e in s.scalars(select(Entry).where(Entry.relevant))}
        assert len(dev_ids) == 1


def test_a_different_story_alerts_separately(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    t0 = clock.now - timedelta(minutes=20)
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", t0)]))
    p = make(database, clock, [url], webhook_sink.url)
    cycle(p)
    feed_server.serve(
        "/a.xml",
        rss(
            [
                item(RELEVANT, "https://a.example/1", t0),
                item(OTHER_RELEVANT, "https://a.example/2", clock.now),
            ]
        ),
    )
    clock.advance(timedelta(minutes=30))
    cycle(p)
    urls = [r["body"]["articles"][0]["url"] for r in webhook_sink.accepted]
    assert urls == ["https://a.example/1", "https://a.example/2"]


def test_backfill_stores_and_matches_old_entries_without_alerting(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    old = clock.now - timedelta(days=3)
    url = feed_server.serve(
        "/a.xml",
        rss(
            [
                item(RELEVANT, "https://a.example/old", old),
                item(IRRELEVANT, "https://a.example/x", old),
            ]
        ),
    )
    p = make(database, clock, [url], webhook_sink.url, backfill="24h")
    cycle(p)
    assert webhook_sink.received == []
    with database.session() as s:
        entries = list(s.scalars(select(Entry)))
        assert len(entries) == 2
        assert [e.relevant for e in sorted(entries, key=lambda e: e.url or "")] == [True, False]
        assert {d.state for d in s.scalars(select(Development))} == {"history"}


def test_a_copy_of_an_article_older_than_the_cluster_window_joins_it_silently(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    """Backfill holds a story two weeks old; a feed then re-posts it under a tracking address.
    The clustering index keeps only the recent days, but the same article is the same
    development, however old: no alert."""
    old = clock.now - timedelta(days=15)
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/talks", old)]))
    p = make(database, clock, [url], webhook_sink.url, backfill="24h")
    cycle(p)
    copy = item(
        RELEVANT,
        "https://a.example/talks?utm_source=social&utm_medium=share",
        clock.now - timedelta(minutes=5),
        guid="repost-1",
        title=RELEVANT["title"] + " (video)",
    )
    feed_server.serve("/a.xml", rss([copy, item(RELEVANT, "https://a.example/talks", old)]))
    clock.advance(timedelta(minutes=30))
    cycle(p)
    assert webhook_sink.received == []
    with database.session() as s:
        entries = list(s.scalars(select(Entry)))
        assert len(entries) == 2
        assert len({e.development_id for e in entries}) == 1
        copied = next(e for e in entries if "utm_source" in e.url)
        assert copied.join_reason.startswith("same-url")


def test_broken_feeds_are_recorded_and_do_not_stop_the_poll(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    good = feed_server.serve("/good.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    html = feed_server.serve(
        "/html.xml", "<html><body>not a feed</body></html>", content_type="text/html"
    )
    missing = feed_server.url("/missing.xml")
    p = make(database, clock, [html, missing, good], webhook_sink.url)
    cycle(p)
    assert len(webhook_sink.accepted) == 1
    with database.session() as s:
        feeds = {f.url: f for f in s.scalars(select(Feed))}
        assert feeds[missing].error_count == 1 and "404" in (feeds[missing].last_error or "")
        assert feeds[html].error_count == 1 and "not a feed" in (feeds[html].last_error or "")
        assert feeds[good].error_count == 0
        # a failing feed backs off beyond its normal interval
        assert feeds[missing].next_poll_at is not None
        assert feeds[missing].next_poll_at >= clock.now + timedelta(minutes=10)


def test_failed_webhook_is_retried_with_the_same_id(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    p = make(database, clock, [url], webhook_sink.url)
    webhook_sink.responses = [(500, {}), (503, {"Retry-After": "120"})]
    cycle(p)
    asyncio.run(p.deliver_due())  # not yet due: nothing is sent
    assert len(webhook_sink.received) == 1
    clock.advance(timedelta(seconds=11))
    asyncio.run(p.deliver_due())
    assert len(webhook_sink.received) == 2  # 503 with Retry-After: 120
    clock.advance(timedelta(seconds=60))
    asyncio.run(p.deliver_due())
    assert len(webhook_sink.received) == 2
    clock.advance(timedelta(seconds=61))
    asyncio.run(p.deliver_due())
    ids = {r["headers"]["webhook-id"] for r in webhook_sink.received}
    assert len(webhook_sink.received) == 3 and len(ids) == 1
    with database.session() as s:
        d = s.scalars(select(Delivery)).one()
        assert d.status == "delivered" and d.attempts == 3


def test_permanent_refusal_and_exhausted_retries_are_dead_lettered(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    p = make(database, clock, [url], webhook_sink.url, max_attempts=2)
    webhook_sink.responses = [(410, {})]
    cycle(p)
    with database.session() as s:
        d = s.scalars(select(Delivery)).one()
        assert d.status == "dead" and "410" in (d.last_error or "")
        assert count(database, Alert) == 1


def test_commentary_alone_does_not_alert(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    url = feed_server.serve(
        "/a.xml",
        rss(
            [
                item(
                    {
                        "title": "Analysis: what Putin wants from Israel's new government",
                        "description": "Russia and Israel have kept a channel open on Syria "
                        "for years.",
                    },
                    "https://a.example/analysis",
                    clock.now,
                )
            ]
        ),
    )
    p = make(database, clock, [url], webhook_sink.url)
    cycle(p)
    assert webhook_sink.received == []
    with database.session() as s:
        e = s.scalars(select(Entry)).one()
        assert e.relevant and e.development_id is not None


def test_channel_filters_choose_who_gets_an_alert(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    settings = Settings(
        database={"url": database.url},
        feeds=[{"url": url}],
        channels=[
            {"type": "webhook", "name": "all", "url": webhook_sink.url},
            {
                "type": "webhook",
                "name": "nuclear-desk",
                "url": webhook_sink.url,
                "topics": ["iran-nuclear"],
            },
            {
                "type": "webhook",
                "name": "relations-desk",
                "url": webhook_sink.url,
                "topics": ["russia-israel"],
            },
            {
                "type": "webhook",
                "name": "hezbollah-desk",
                "url": webhook_sink.url,
                "topics": ["hezbollah"],
            },
            {"type": "webhook", "name": "only-strong", "url": webhook_sink.url, "min_score": 5.0},
        ],
    )
    p = Pipeline(settings, database, clock=clock)
    p.sync_feeds()
    cycle(p)
    with database.session() as s:
        assert sorted(d.channel for d in s.scalars(select(Delivery))) == [
            "all",
            "nuclear-desk",
            "relations-desk",
        ]  # the story also touches Iran's programme
    assert len(webhook_sink.accepted) == 3
    assert len({r["headers"]["webhook-id"] for r in webhook_sink.accepted}) == 1


def routed(database: Database, clock: Clock, feed: str, channel: dict[str, Any]) -> Pipeline:
    settings = Settings(
        database={"url": database.url},
        feeds=[{"url": feed}],
        channels=[{"type": "webhook", "name": "desk", **channel}],
    )
    p = Pipeline(settings, database, clock=clock)
    p.sync_feeds()
    return p


def test_digest_goes_out_once_on_its_schedule_even_with_two_workers(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    t0 = clock.now  # 12:00 UTC = 15:00 in Moscow
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", t0)]))
    channel = {
        "url": webhook_sink.url,
        "mode": "digest",
        "digest_cron": "0 8 * * *",
        "timezone": "Europe/Moscow",
    }
    one, two = routed(database, clock, url, channel), routed(database, clock, url, channel)
    cycle(one)
    feed_server.serve(
        "/a.xml",
        rss(
            [
                item(RELEVANT, "https://a.example/1", t0),
                item(OTHER_RELEVANT, "https://a.example/2", t0),
            ]
        ),
    )
    clock.advance(timedelta(hours=3))
    cycle(one)
    assert webhook_sink.received == []  # nothing until 08:00 Moscow time
    clock.now = datetime(2026, 1, 2, 4, 59, tzinfo=UTC)  # 07:59 in Moscow
    asyncio.run(one.deliver_due())
    assert webhook_sink.received == []
    clock.advance(timedelta(minutes=2))
    assert one.build_digests() + two.build_digests() == 1
    asyncio.run(two.deliver_due())
    asyncio.run(one.deliver_due())
    assert len(webhook_sink.accepted) == 1
    body = webhook_sink.accepted[0]["body"]
    assert body["type"] == "digest.new"
    assert [a["url"] for a in body["articles"]] == ["https://a.example/1", "https://a.example/2"]
    clock.advance(timedelta(hours=1))
    asyncio.run(one.deliver_due())
    assert len(webhook_sink.received) == 1  # the next digest waits for tomorrow


def test_rate_limit_folds_the_excess_into_the_digest(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    t0 = clock.now
    url = feed_server.serve(
        "/a.xml",
        rss(
            [
                item(RELEVANT, "https://a.example/1", t0),
                item(OTHER_RELEVANT, "https://a.example/2", t0),
            ]
        ),
    )
    p = routed(
        database,
        clock,
        url,
        {"url": webhook_sink.url, "rate_limit": "1/1h", "digest_cron": "0 * * * *"},
    )
    cycle(p)
    assert [r["body"]["type"] for r in webhook_sink.accepted] == ["development.new"]
    clock.advance(timedelta(hours=1))
    asyncio.run(p.deliver_due())
    kinds = [r["body"]["type"] for r in webhook_sink.accepted]
    assert kinds == ["development.new", "digest.new"]
    first, digest = (r["body"] for r in webhook_sink.accepted)
    assert len(digest["articles"]) == 1
    assert digest["articles"][0]["url"] != first["articles"][0]["url"]


def test_quiet_hours_hold_alerts_until_they_end(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    clock.now = datetime(2026, 1, 1, 23, 0, tzinfo=UTC)
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    p = routed(database, clock, url, {"url": webhook_sink.url, "quiet_hours": "22:00-07:00"})
    cycle(p)
    clock.now = datetime(2026, 1, 2, 6, 59, tzinfo=UTC)
    asyncio.run(p.deliver_due())
    assert webhook_sink.received == []
    clock.now = datetime(2026, 1, 2, 7, 0, 1, tzinfo=UTC)
    asyncio.run(p.deliver_due())
    assert len(webhook_sink.accepted) == 1


def test_gone_feed_is_disabled_and_stays_off(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:
    url = feed_server.serve("/gone.xml", "", status=410, content_type="text/plain")
    p = make(database, clock, [url], None)
    cycle(p)
    p.sync_feeds()  # a restart with the same config does not revive it
    with database.session() as s:
        f = s.scalars(select(Feed)).one()
        assert not f.enabled and "410" in (f.last_error or "")


def test_429_with_retry_after_pushes_the_next_poll(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:
    url = feed_server.serve(
        "/busy.xml", "", status=429, content_type="text/plain", headers={"Retry-After": "3600"}
    )
    p = make(database, clock, [url], None)
    cycle(p)
    with database.session() as s:
        f = s.scalars(select(Feed)).one()
        assert f.next_poll_at == clock.now + timedelta(hours=1)


def test_permanent_redirect_moves_the_feed(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    new = feed_server.serve("/new.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    old = feed_server.serve(
        "/old.xml", "", status=301, content_type="text/plain", headers={"Location": new}
    )
    p = make(database, clock, [old], webhook_sink.url)
    cycle(p)
    assert len(webhook_sink.accepted) == 1
    clock.advance(timedelta(minutes=15))
    before = len(feed_server.requests)
    cycle(p)
    assert [r["path"] for r in feed_server.requests[before:]] == ["/new.xml"]
    with database.session() as s:
        f = s.scalars(select(Feed)).one()
        assert f.url == old and f.permanent_url == new and f.last_status == 304


def test_a_feed_failing_for_long_raises_one_health_alert(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    url = feed_server.url("/broken.xml")
    p = make(database, clock, [url], webhook_sink.url, feed_failure_alert="1h")
    for _ in range(4):
        cycle(p)
        clock.advance(timedelta(minutes=40))
    bodies = [r["body"] for r in webhook_sink.accepted]
    assert [b["type"] for b in bodies] == ["feed-health.new"]
    assert bodies[0]["articles"][0]["url"] == url and "404" in bodies[0]["articles"][0]["title"]
    with database.session() as s:
        assert s.scalars(select(Feed)).one().health_alerted_at is not None


def test_a_crashed_workers_feed_leases_expire_and_another_takes_over(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:

    url = feed_server.serve("/a.xml", rss([item(IRRELEVANT, "https://a.example/x", clock.now)]))
    crashed = make(database, clock, [url], None)
    with database.session() as s:  # claims the feed, then "dies" without processing it
        assert len(store.claim_feeds(s, clock.now, crashed.owner, FEED_LEASE, False)) == 1
    other = make(database, clock, [url], None)
    if database.engine.dialect.name == "sqlite":
        # One process at a time uses a SQLite database (db.single_worker): a lease held by
        # another owner is a dead process's, taken over at once.
        assert asyncio.run(other.poll()).feeds == 1
        return
    # On PostgreSQL the owner may be alive (here it is: this very process), so its lease
    # holds until it expires.
    assert asyncio.run(other.poll()).feeds == 0
    clock.advance(FEED_LEASE + timedelta(seconds=1))
    stats = asyncio.run(other.poll())
    assert stats.feeds == 1 and stats.new_entries == 1


def test_retention_removes_old_entries_and_keeps_alerts(
    database: Database, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:

    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    p = make(database, clock, [url], webhook_sink.url)
    cycle(p)
    with database.session() as s:
        assert store.cleanup(s, clock.now - timedelta(days=1)) == 0
    with database.session() as s:
        assert store.cleanup(s, clock.now + timedelta(days=1)) == 1
    assert count(database, Entry) == 0 and count(database, Development) == 0
    assert count(database, Alert) == 1


def test_word_weights_count_the_whole_document_before_placing_any_entry(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:
    items = [
        item(RELEVANT, "https://a.example/1", clock.now),
        item(OTHER_RELEVANT, "https://a.example/2", clock.now - timedelta(minutes=5)),
        item(IRRELEVANT, "https://a.example/3", clock.now - timedelta(minutes=9)),
    ]
    p = make(database, clock, [feed_server.serve("/a.xml", rss(items))], None)
    seen: list[int] = []
    real = p.cluster.assign

    def spy(*args: Any, **kw: Any) -> Any:
        seen.append(p.cluster.idf.n)
        return real(*args, **kw)

    p.cluster.assign = spy  # type: ignore[method-assign]
    asyncio.run(p.poll())
    assert seen == [3, 3]  # both stories placed against a pool of all three documents


def test_a_new_process_reads_back_the_index_before_it_stores_anything(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:
    """The read-back of what earlier runs stored (the background of the word weights and
    the developments' members) starts at the first changed document, not inside the
    first transaction that stores one, and what the later catch-up under the lock reads
    is then only what was stored meanwhile (here nothing)."""
    first = [item(IRRELEVANT, f"https://a.example/{n}", clock.now) for n in range(3)]
    url = feed_server.serve("/a.xml", rss(first))
    asyncio.run(make(database, clock, [url], None).poll())
    clock.advance(timedelta(minutes=30))
    feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/9", clock.now), *first]))
    p = make(database, clock, [url], None)  # a new process: an empty index
    events: list[tuple[str, int]] = []
    real_catch_up, real_batch = p.developments.catch_up, p.poller.process_result

    def catch_up(s: Any, now: datetime) -> None:
        before = p.cluster.max_entry_id
        real_catch_up(s, now)
        events.append(("catch-up", p.cluster.max_entry_id - before))

    def process_result(*args: Any) -> Any:
        events.append(("store", 0))
        return real_batch(*args)

    p.developments.catch_up = catch_up  # type: ignore[method-assign]
    p.poller.process_result = process_result  # type: ignore[method-assign]
    stats = asyncio.run(p.poll())
    assert stats.new_entries == 1
    assert events[:2] == [("catch-up", 3), ("store", 0)], events
    assert ("catch-up", 0) in events[2:]  # under the lock, nothing more to read


def fetched(database: Database, url: str, body: str) -> FetchResult:
    """What a fetch of `url` (a configured feed) returns with `body`, as fetch.py builds it."""
    with database.session() as s:
        feed_id = s.scalars(select(Feed.id).where(Feed.url == url)).one()
    data = body.encode()
    return FetchResult(
        feed_id,
        url,
        status=200,
        body=data,
        body_hash=hashlib.sha256(data).hexdigest(),
        content_type="application/rss+xml",
    )


def test_a_batch_of_feeds_commits_once_and_one_failure_stays_that_feeds(
    database: Database,
    clock: Clock,
    feed_server: FeedServer,
    webhook_sink: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    urls = [feed_server.url(f"/{name}.xml") for name in ("a", "b", "c")]
    p = make(database, clock, urls, webhook_sink.url)
    docs = [
        rss([item(RELEVANT, "https://a.example/1", clock.now)]),
        rss([item(IRRELEVANT, "https://b.example/1", clock.now)]),
        rss(
            [
                item(OTHER_RELEVANT, "https://c.example/1", clock.now),
                item(IRRELEVANT, "https://c.example/2", clock.now),
            ]
        ),
    ]
    batch = [(fetched(database, u, d), None) for u, d in zip(urls, docs, strict=True)]
    commits: list[object] = []

    def on_commit(conn: object) -> None:
        commits.append(conn)

    event.listen(database.engine, "commit", on_commit)
    stats = p.process_batch(batch)
    event.remove(database.engine, "commit", on_commit)
    assert len(commits) == 1 and (stats.fetched, stats.new_entries, stats.alerts) == (3, 4, 0)
    # The on-topic entries wait for the end of the poll to be placed and announced.
    assert p.settle().alerts == 2
    assert count(database, Entry) == 4

    # Next poll: feed b's document changed and storing it fails; a and c are stored.
    clock.advance(timedelta(minutes=10))
    docs = [rss([item(OTHER_RELEVANT, f"https://{n}.example/3", clock.now)]) for n in "abc"]
    batch = [(fetched(database, u, d), None) for u, d in zip(urls, docs, strict=True)]
    real = refresh.save_entries
    index = p.cluster

    def failing(ctx: Any, s: Any, feed: Feed, *args: Any) -> None:
        real(ctx, s, feed, *args)
        if feed.url == urls[1]:
            raise RuntimeError("a bug while storing feed b")

    monkeypatch.setattr(refresh, "save_entries", failing)
    stats = p.process_batch(batch)
    assert stats.errors == 1 and stats.failed_feeds == [urls[1]] and stats.new_entries == 2
    with database.session() as s:
        feeds = {f.url: f for f in s.scalars(select(Feed))}
        assert "a bug while storing feed b" in (feeds[urls[1]].last_error or "")
        assert feeds[urls[0]].last_error is None and feeds[urls[2]].last_error is None
        stored = set(s.scalars(select(Entry.url)))
    assert "https://b.example/3" not in stored
    assert {"https://a.example/3", "https://c.example/3"} <= stored
    # the in-memory clustering index held b's rolled-back entry: it was started afresh
    assert p.cluster is not index


def test_not_modified_answers_in_a_batch_are_recorded_as_one_by_one(
    db_url: str, tmp_path: Any, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch writes its plain 304s in one UPDATE; the feed rows must end as processing
    each answer on its own leaves them: a recovering feed, a freshness hint, a feed
    that moved (that one goes the ordinary way), a failure among them."""
    monkeypatch.setattr("random.random", lambda: 0.5)  # the schedule's jitter
    urls = [f"https://{n}.example/feed" for n in "abcde"]

    def setup(url: str) -> Pipeline:
        database = Database(url)
        database.upgrade()
        p = make(database, clock, urls, None)
        with database.session() as s:
            s.execute(
                update(Feed)
                .where(Feed.url == urls[1])
                .values(error_count=3, last_error="timed out", health_alerted_at=clock.now)
            )
            store.claim_feeds(s, clock.now, p.owner, FEED_LEASE, only_due=False)
        return p

    def results(p: Pipeline) -> list[FetchResult]:
        with p.db.session() as s:
            ids = {f.url: f.id for f in s.scalars(select(Feed))}
        return [
            FetchResult(ids[urls[0]], urls[0], status=304, etag='"a2"'),
            FetchResult(ids[urls[1]], urls[1], status=304, last_modified="Mon, 30 Nov 2026"),
            FetchResult(ids[urls[2]], urls[2], status=304, max_age=7200.0),
            FetchResult(
                ids[urls[3]], urls[3], status=304, permanent_url="https://moved.example/feed"
            ),
            FetchResult(ids[urls[4]], urls[4], error="cannot connect: refused"),
        ]

    def rows(p: Pipeline) -> list[tuple[Any, ...]]:
        with p.db.session() as s:
            return [
                (
                    f.url,
                    f.permanent_url,
                    f.etag,
                    f.last_modified,
                    f.last_status,
                    f.error_count,
                    f.last_error,
                    f.health_alerted_at,
                    f.last_polled_at,
                    f.last_success_at,
                    f.next_poll_at,
                    f.lease_owner,
                )
                for f in s.scalars(select(Feed).order_by(Feed.url))
            ]

    batched, single = setup(db_url), setup(f"sqlite:///{tmp_path / 'single.db'}")
    clock.advance(timedelta(hours=1))
    stats = batched.process_batch([(r, None) for r in results(batched)])
    one_by_one = [single.process_result(r) for r in results(single)]
    assert (stats.not_modified, stats.errors) == (4, 1)
    assert sum(x.not_modified for x in one_by_one) == 4
    assert rows(batched) == rows(single)
    got = {r[0]: r for r in rows(batched)}
    assert got[urls[1]][5:8] == (0, None, None)  # recovered
    assert got[urls[2]][10] > got[urls[0]][10]  # the hint pushed its next poll out
    assert got[urls[3]][1] == "https://moved.example/feed"
    for p in (batched, single):
        p.db.dispose()


def test_a_feed_that_stops_parsing_counts_as_failing_even_when_answered_304(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:
    """A good feed turns into an HTML page: each poll is a failure (back-off, health), also
    when the server answers 304 to the page's validator; the feed recovers when it is a
    feed again."""
    url = feed_server.serve("/a.xml", rss([item(IRRELEVANT, "https://a.example/1", clock.now)]))
    p = make(database, clock, [url], None)
    assert asyncio.run(p.poll()).errors == 0
    feed_server.serve(
        "/a.xml", "<html><body>We moved our news.</body></html>", content_type="text/html"
    )
    seen = []
    for _ in range(3):
        clock.advance(timedelta(hours=1))
        stats = asyncio.run(p.poll())
        with database.session() as s:
            feed = s.scalars(select(Feed)).one()
            seen.append((stats.errors, feed.error_count, feed.error_kind))
    assert seen == [(1, 1, "parse"), (1, 2, "parse"), (1, 3, "parse")]
    # the second and third polls were answered 304 (the page's ETag was kept)
    assert [r["headers"].get("If-None-Match") is not None for r in feed_server.requests[-2:]] == [
        True,
        True,
    ]
    feed_server.serve("/a.xml", rss([item(IRRELEVANT, "https://a.example/2", clock.now)]))
    clock.advance(timedelta(hours=1))
    assert asyncio.run(p.poll()).errors == 0
    with database.session() as s:
        feed = s.scalars(select(Feed)).one()
        assert (feed.error_count, feed.error_kind, feed.last_error) == (0, None, None)


def test_an_alert_keeps_the_topics_it_was_written_with_and_delivers_without_a_matcher(
    tmp_path: Any, clock: Clock, feed_server: FeedServer, webhook_sink: WebhookSink
) -> None:
    """The alert's topics (titles, scores, evidence) are frozen when it is written: a
    `monitor deliver` process sends it without loading the matcher, and says the same."""
    url = f"sqlite:///{tmp_path / 'm.db'}"
    database = Database(url)
    database.upgrade()
    feeds = [feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))]
    p = make(database, clock, feeds, webhook_sink.url, retry_initial="1s")
    webhook_sink.responses = [(503, {})]  # the first attempt fails: deliver retries it
    asyncio.run(p.poll())
    asyncio.run(p.deliver_due())
    with database.session() as s:
        frozen = s.scalars(select(Alert)).one().payload["topics"]
        # make the delivery due now, as the retry would be
        for d in s.scalars(select(Delivery)):
            d.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)
    database.dispose()
    assert frozen and all(t["title"] and t["evidence"] for t in frozen)
    script = f"""
import asyncio, json, sys
from monitor.config import Settings
from monitor.db import Database
from monitor.pipeline import Pipeline
db = Database({url!r})
p = Pipeline(Settings(database={{"url": {url!r}}},
                      channels=[{{"type": "webhook", "name": "hook",
                                  "url": {webhook_sink.url!r}}}]), db)
d = asyncio.run(p.deliver_due())
print(json.dumps([d.delivered, "monitor.match" in sys.modules]))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout.splitlines()[-1]) == [1, False]
    assert webhook_sink.accepted[-1]["body"]["topics"] == frozen


def test_values_too_long_or_unsafe_for_a_column_are_bounded_alike_on_both_databases(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:
    """A link, guid or Last-Modified longer than its column, and a javascript: link, stored
    the same way on SQLite and PostgreSQL (which refused them: the feed failed on every
    poll); the feed polls cleanly twice."""
    long_link = "https://a.example/" + "x" * 3000
    items = [
        item(RELEVANT, long_link, clock.now, guid="g-" + "y" * 2000),
        item(IRRELEVANT, "javascript:alert(document.cookie)", clock.now, guid="js"),
    ]
    url = feed_server.serve(
        "/a.xml", rss(items), headers={"Last-Modified": "Mon, " + "9" * 300 + " GMT"}
    )
    p = make(database, clock, [url], None)
    first = asyncio.run(p.poll())
    clock.advance(timedelta(hours=1))
    second = asyncio.run(p.poll())
    assert (first.errors, second.errors) == (0, 0)
    with database.session() as s:
        rows = {e.title: e for e in s.scalars(select(Entry))}
        feed = s.scalars(select(Feed)).one()
    assert len(rows) == 2 and feed.last_modified is None and feed.error_count == 0
    big, js = rows[RELEVANT["title"]], rows[IRRELEVANT["title"]]
    assert big.guid.startswith("sha256:") and big.url is None and big.canonical_url is None
    assert js.url is None


def test_health_reflects_failing_ticks_and_feeds(
    database: Database, clock: Clock, feed_server: FeedServer
) -> None:
    """/healthz said healthy while every tick failed: it now says so after three failed
    ticks in a row, after ticks whose every feed failed, and while every enabled feed is
    failing; one good tick (and a feed that recovers) makes it healthy again."""
    from monitor import metrics
    from monitor.service import health_report

    broken = feed_server.serve("/a.xml", "<html>not a feed</html>", content_type="text/html")
    p = make(database, clock, [broken], None)
    metrics.mark_tick()
    metrics.tick_done(0, 0)
    assert health_report(p, 10)["ok"] is True  # nothing polled yet, nothing failing
    for _ in range(metrics.FAILED_TICKS):
        stats = asyncio.run(p.poll())
        metrics.tick_done(stats.feeds, stats.errors)
    report = health_report(p, 10)
    assert report["ok"] is False and report["ticks"] == "3 failed in a row"
    assert report["feeds"] == {"enabled": 1, "failing": 1}
    metrics.tick_failed("OSError: [Errno 28] No space left on device")
    assert "No space left" in str(health_report(p, 10)["last_failure"])
    feed_server.serve("/a.xml", rss([item(IRRELEVANT, "https://a.example/1", clock.now)]))
    stats = asyncio.run(p.poll())
    metrics.tick_done(stats.feeds, stats.errors)
    assert health_report(p, 10)["ok"] is True
