"""Parsing and matching in worker processes: a large poll must store, cluster and alert
exactly as an in-process one does, and a dying worker must cost one feed, not the poll."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

import monitor.prepare
from monitor.config import Settings
from monitor.db import Database
from monitor.match import Matcher, load_profile
from monitor.models import Alert, Development, Entry, Feed
from monitor.pipeline import Pipeline
from monitor.prepare import Preparer
from tests.conftest import Clock, FeedServer, rss
from tests.test_pipeline import IRRELEVANT, OTHER_RELEVANT, RELEVANT, item


def build_feeds(server: FeedServer, clock: Clock) -> list[str]:
    """Twelve feeds: the same two stories told by several of them, local news, a broken one."""
    urls = []
    for n in range(12):
        at = clock.now - timedelta(minutes=5 * n)
        items = [item(IRRELEVANT, f"https://n{n}.example/local/{k}", at - timedelta(hours=k),
                      title=f"{IRRELEVANT['title']} ({n}/{k})") for k in range(6)]
        if n % 3 == 0:
            items.append(item(RELEVANT, f"https://n{n}.example/talks", at))
        if n % 4 == 1:
            items.append(item(OTHER_RELEVANT, f"https://n{n}.example/strike", at))
        urls.append(server.serve(f"/{n}.xml", rss(items, title=f"Outlet {n}")))
    urls.append(server.serve("/broken.xml", "<html>not a feed</html>", content_type="text/html"))
    return urls


def outcome(url: str, feeds: list[str], clock: Clock, processes: int) -> dict[str, Any]:
    db = Database(url)
    db.upgrade()
    settings = Settings(database={"url": url}, service={"processes": processes},
                        feeds=[{"url": u, "name": f"feed {i}"} for i, u in enumerate(feeds)])
    p = Pipeline(settings, db, clock=clock)
    p.sync_feeds()
    try:
        stats = asyncio.run(p.poll())
        pooled = p.preparer._pool is not None
    finally:
        p.close()
    with db.session() as s:
        entries = s.scalars(select(Entry).order_by(Entry.guid)).all()
        devs = {d.id: d.title for d in s.scalars(select(Development))}
        result = {
            "pooled": pooled,
            "stats": (stats.fetched, stats.errors, stats.new_entries, stats.developments,
                      stats.alerts),
            "entries": [(e.guid, e.title, round(e.score, 6), e.relevant, e.join_reason,
                         devs.get(e.development_id or 0), e.cluster_features) for e in entries],
            "alerts": sorted(str(devs.get(a.development_id or 0))
                            for a in s.scalars(select(Alert))),
            "errors": sorted((f.url, f.last_error) for f in s.scalars(select(Feed))
                             if f.error_count),
        }
    db.dispose()
    return result


def test_pooled_poll_matches_the_in_process_poll(
        tmp_path: Path, feed_server: FeedServer, clock: Clock,
        monkeypatch: pytest.MonkeyPatch) -> None:
    feeds = build_feeds(feed_server, clock)
    monkeypatch.setattr(monitor.prepare, "POOL_MIN_FEEDS", 2)
    inline = outcome(f"sqlite:///{tmp_path / 'inline.db'}", feeds, clock, processes=0)
    pooled = outcome(f"sqlite:///{tmp_path / 'pooled.db'}", feeds, clock, processes=2)
    assert pooled.pop("pooled") and not inline.pop("pooled")
    assert pooled == inline
    # and the run did something worth comparing: two stories, alerted once each
    assert len(inline["alerts"]) == 2 and inline["stats"][1] == 1
    assert "not a feed" in inline["errors"][0][1]


@pytest.fixture
def pool_of_one() -> Iterator[Preparer]:
    preparer = Preparer(Matcher(load_profile()), None, None, "sqlite", processes=1)
    yield preparer
    preparer.close()


def prepare_in_pool(preparer: Preparer, clock: Clock) -> monitor.prepare.Prepared:
    body = rss([item(RELEVANT, "https://a.example/1", clock.now)]).encode()
    return asyncio.run(preparer.prepare(body, "https://a.example/feed", None,
                                        "https://a.example/feed", clock.now, {}, True))


def worker_pids(preparer: Preparer) -> list[int]:
    assert preparer._pool is not None
    return list(preparer._pool._processes)  # type: ignore[attr-defined]


def test_a_dead_worker_fails_one_document_and_the_pool_starts_afresh(
        pool_of_one: Preparer, clock: Clock) -> None:
    assert prepare_in_pool(pool_of_one, clock).articles  # starts the pool
    pool = pool_of_one._pool
    for pid in worker_pids(pool_of_one):
        os.kill(pid, signal.SIGKILL)
    for _ in range(200):  # the pool notices its dead worker in the background
        if pool._broken:  # type: ignore[union-attr]
            break
        asyncio.run(asyncio.sleep(0.05))
    died = prepare_in_pool(pool_of_one, clock)
    assert died.error is not None and "died" in died.error and not died.articles
    again = prepare_in_pool(pool_of_one, clock)
    assert again.error is None and again.articles and pool_of_one._pool is not pool


def test_entries_stored_unchanged_are_not_matched_again(
        sqlite_url: str, feed_server: FeedServer, clock: Clock) -> None:
    first = [item(IRRELEVANT, f"https://a.example/{k}", clock.now - timedelta(hours=k),
                  title=f"Council news {k}") for k in range(5)]
    url = feed_server.serve("/a.xml", rss(first))
    db = Database(sqlite_url)
    db.upgrade()
    p = Pipeline(Settings(database={"url": sqlite_url}, feeds=[{"url": url, "name": "a"}]),
                 db, clock=clock)
    p.sync_feeds()
    matched: list[str] = []
    real = p.matcher.match_article

    def counting(a: Any) -> Any:
        matched.append(a.title)
        return real(a)

    p.matcher.match_article = counting  # type: ignore[method-assign]
    asyncio.run(p.poll())
    assert len(matched) == 5
    matched.clear()
    clock.advance(timedelta(minutes=10))
    revised = dict(first[0], description="A corrected account of the council meeting.")
    feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/new", clock.now),
                                     revised, *first[1:]]))
    stats = asyncio.run(p.poll())
    assert sorted(matched) == sorted([RELEVANT["title"], "Council news 0"])
    assert (stats.new_entries, stats.updated_entries) == (1, 1)
    p.close()
    db.dispose()


def test_workers_leave_sigterm_and_sigint_to_the_parent(
        pool_of_one: Preparer, clock: Clock) -> None:
    assert prepare_in_pool(pool_of_one, clock).articles
    pool = pool_of_one._pool
    for pid in worker_pids(pool_of_one):
        os.kill(pid, signal.SIGTERM)
        os.kill(pid, signal.SIGINT)
    again = prepare_in_pool(pool_of_one, clock)
    assert again.error is None and again.articles and pool_of_one._pool is pool


def test_workers_killed_while_starting_mean_in_process_parsing_then_a_fresh_pool(
        pool_of_one: Preparer, clock: Clock) -> None:
    assert pool_of_one.ready() is False  # just started
    pool = pool_of_one._pool
    for pid in worker_pids(pool_of_one):
        os.kill(pid, signal.SIGKILL)
    for _ in range(400):  # until the pool reports the dead worker on its warm-up job
        if all(f.done() for f in pool_of_one._warm):
            break
        asyncio.run(asyncio.sleep(0.05))
    assert pool_of_one.ready() is False and pool_of_one._pool is None  # given up, for now
    for _ in range(400):
        if pool_of_one.ready():
            break
        asyncio.run(asyncio.sleep(0.05))
    done = prepare_in_pool(pool_of_one, clock)
    assert done.error is None and done.articles and pool_of_one._pool is not pool
