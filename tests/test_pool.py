"""The parser pool (worker processes that prepare fetched documents): a pooled poll must
store, cluster and alert exactly as an in-process one does; a worker dying on a document,
or taking too long with it, must cost that document, not the poll; the pool lives as long
as the pipeline."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor import pool
from monitor.config import Settings
from monitor.db import Database
from monitor.models import Alert, Entry, Feed
from monitor.pipeline import Pipeline
from monitor.pool import DIED
from tests import pool_jobs
from tests.conftest import Clock, FeedServer, rss
from tests.test_pipeline import IRRELEVANT, OTHER_RELEVANT, RELEVANT, item


def local_news(host: str, at: datetime, count: int, title: str) -> list[dict[str, Any]]:
    """`count` off-topic items of `host`, an hour apart from `at` back, titled `title` k."""
    return [
        item(IRRELEVANT, f"https://{host}/local/{k}", at - timedelta(hours=k), title=f"{title} {k}")
        for k in range(count)
    ]


def build_feeds(server: FeedServer, clock: Clock) -> list[str]:
    """Twelve feeds: the same two stories told by several of them, local news, a broken one."""
    urls = []
    for n in range(12):
        at = clock.now - timedelta(minutes=5 * n)
        items = local_news(f"n{n}.example", at, 6, f"{IRRELEVANT['title']} ({n})")
        if n % 3 == 0:
            items.append(item(RELEVANT, f"https://n{n}.example/talks", at))
        if n % 4 == 1:
            items.append(item(OTHER_RELEVANT, f"https://n{n}.example/strike", at))
        urls.append(server.serve(f"/{n}.xml", rss(items, title=f"Outlet {n}")))
    urls.append(server.serve("/broken.xml", "<html>not a feed</html>", content_type="text/html"))
    return urls


def make(url: str, feeds: list[str], clock: Clock, processes: int, **service: Any) -> Pipeline:
    db = Database(url)
    db.upgrade()
    settings = Settings(
        database={"url": url},
        service={"processes": processes, **service},
        feeds=[{"url": u, "name": f"feed {i}"} for i, u in enumerate(feeds)],
    )
    p = Pipeline(settings, db, clock=clock, service=SERVICE)
    p.sync_feeds()
    return p


def snapshot(p: Pipeline) -> dict[str, Any]:
    """What a poll stored, as far as it does not depend on the order feeds arrive in:
    the pool prepares them in another order than one process, and which outlet's copy of a
    story opens its development (and which joins it) follows that order."""
    with p.db.session() as s:
        entries = s.scalars(select(Entry).order_by(Entry.guid)).all()
        groups: dict[int, list[str]] = {}
        for e in entries:
            if e.development_id is not None:
                groups.setdefault(e.development_id, []).append(e.guid)
        return {
            "entries": [
                (
                    e.guid,
                    e.title,
                    e.revision,
                    round(e.score, 6),
                    e.relevant,
                    e.join_reason == "off-topic",
                    e.cluster_features,
                )
                for e in entries
            ],
            "developments": sorted(sorted(guids) for guids in groups.values()),
            "alerts": sorted(
                sorted(groups.get(a.development_id or 0, [])) for a in s.scalars(select(Alert))
            ),
            "errors": sorted(
                (f.url, f.last_error) for f in s.scalars(select(Feed)) if f.error_count
            ),
        }


def close(*pipelines: Pipeline) -> None:
    for p in pipelines:
        p.close()
        p.db.dispose()


def test_a_pooled_poll_stores_what_an_in_process_poll_stores(
    db_url: str,
    tmp_path: Path,
    feed_server: FeedServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Pooled on SQLite and on PostgreSQL, against an in-process poll on SQLite."""
    feeds = build_feeds(feed_server, clock)
    monkeypatch.setattr(pool, "POOL_MIN_FEEDS", 2)
    inline = make(f"sqlite:///{tmp_path / 'inline.db'}", feeds, clock, processes=0)
    pooled = make(db_url, feeds, clock, processes=2)
    stats = [asyncio.run(p.poll()) for p in (inline, pooled)]
    assert stats[0] == stats[1] and (inline.pooled, pooled.pooled) == (False, True)
    first = snapshot(inline)
    assert snapshot(pooled) == first
    # and the run did something worth comparing: two stories, alerted once each
    assert len(first["alerts"]) == 2 and stats[0].developments == 2
    assert "not a feed" in first["errors"][0][1]

    # A second poll: some documents gained entries, one entry was revised, the rest are
    # unchanged (304s); workers read what is stored from the database.
    clock.advance(timedelta(minutes=10))
    for n in (0, 1, 5):
        items = local_news(f"n{n}.example", clock.now, 6, f"{IRRELEVANT['title']} ({n})")
        items[2]["description"] = "A corrected account of the council meeting."
        items.append(item(OTHER_RELEVANT, f"https://n{n}.example/later", clock.now))
        feed_server.serve(f"/{n}.xml", rss(items, title=f"Outlet {n}"))
    stats = [asyncio.run(p.poll()) for p in (inline, pooled)]
    assert stats[0] == stats[1] and pooled.pool.started == 1
    assert (stats[0].new_entries, stats[0].updated_entries) == (3, 3)
    assert snapshot(pooled) == snapshot(inline)
    close(inline, pooled)


def pooled(
    tmp_path: Path,
    feed_server: FeedServer,
    clock: Clock,
    n: int = 10,
    job: Any = None,
    initializer: Any = None,
    **service: Any,
) -> tuple[Pipeline, list[str]]:
    """A pipeline of `n` one-entry feeds whose pool runs `job` and `initializer`."""
    feeds = [
        feed_server.serve(
            f"/{k}.xml",
            rss([item(IRRELEVANT, f"https://n{k}.example/1", clock.now, title=f"Local news {k}")]),
        )
        for k in range(n)
    ]
    p = make(f"sqlite:///{tmp_path / 'pooled.db'}", feeds, clock, processes=2, **service)
    if job is not None:
        p.pool.job = job
    if initializer is not None:
        p.pool.initializer = initializer
    return p, feeds


@pytest.fixture(autouse=True)
def small_polls_use_the_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pool, "POOL_MIN_FEEDS", 2)


# Whether the pipelines here are the service's (workers from a forkserver) or a one-shot
# poll's (workers forked from this process at the start of the poll): every test runs
# with both.
SERVICE = False


@pytest.fixture(autouse=True, params=["one-shot", "service"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(sys.modules[__name__], "SERVICE", request.param == "service")
    return str(request.param)


def test_a_worker_dying_on_a_document_costs_that_feed_only(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    """The worker reading "Local news 3" dies, and the one reading "4": those two feeds
    fail (and are polled again next time); the replacements prepare the rest."""
    p, feeds = pooled(tmp_path, feed_server, clock, job=pool_jobs.dying)
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.fetched, stats.new_entries) == (2, 8, 8)
    assert snapshot(p)["errors"] == sorted([(feeds[3], DIED), (feeds[4], DIED)])
    with p.db.session() as s:
        kinds = {f.url: (f.error_kind, f.etag) for f in s.scalars(select(Feed))}
    assert kinds[feeds[3]][0] == "worker" and kinds[feeds[3]][1] is None  # fetched again
    assert p.pool.started == 1
    close(p)


def test_a_document_over_the_time_limit_fails_its_feed_until_it_changes(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    p, feeds = pooled(tmp_path, feed_server, clock, job=pool_jobs.slow, document_timeout="1s")
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (1, 9)
    [(url, error)] = snapshot(p)["errors"]
    assert url == feeds[3] and "took over 1 s" in error
    # The same document is not read again (it would cost a worker each time)...
    clock.advance(timedelta(hours=1))
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.fetched, stats.new_entries) == (1, 0, 0)
    # ... a new one is.
    clock.advance(timedelta(hours=1))
    feed_server.serve(
        "/3.xml", rss([item(IRRELEVANT, "https://n3.example/2", clock.now, title="Next")])
    )
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.fetched, stats.new_entries) == (0, 1, 1)
    close(p)


def test_workers_leave_sigterm_and_sigint_to_the_main_process(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    p, _ = pooled(tmp_path, feed_server, clock, job=pool_jobs.signalled)
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (0, 10)
    assert p.pool.started == 1  # no worker was lost to the signals
    close(p)


def test_ending_a_pool_waits_for_a_short_tick_not_pebbles_default(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    """pebble's manager threads look at the pool every `sleep_unit` (0.1 s by default), and
    ending a pool waits for their next look: every one-shot poll paid it. The pool sets
    it shorter; should pebble move or rename the constant, this says so."""
    from pebble.common.types import CONSTS

    p, _ = pooled(tmp_path, feed_server, clock)
    asyncio.run(p.poll())
    assert p.pool.started == 1 and CONSTS.sleep_unit <= pool.MANAGER_TICK < 0.1
    close(p)


def workers(p: Pipeline) -> list[int]:
    """The pids of the pool's worker processes (children of the forkserver)."""
    assert p.pool._pool is not None
    return list(p.pool._pool._pool_manager.worker_manager.workers)


def test_a_pool_that_breaks_is_replaced_and_one_that_keeps_breaking_fails_its_feeds(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    # Every worker's first start fails: the pool breaks, and a new one does the work.
    p, _ = pooled(tmp_path, feed_server, clock, initializer=pool_jobs.failing_once)
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (0, 10) and p.pool.started == 2
    # A worker killed while idle (the OOM killer, say) breaks the pool too.
    os.kill(workers(p)[0], signal.SIGKILL)
    clock.advance(timedelta(hours=1))
    for k in range(10):
        feed_server.serve(
            f"/{k}.xml", rss([item(IRRELEVANT, f"https://n{k}.example/2", clock.now, title="Two")])
        )
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (0, 10)
    close(p)

    # No worker can start: after a few new pools, the documents fail.
    (tmp_path / "pooled.db").unlink()
    p, feeds = pooled(tmp_path, feed_server, clock, initializer=pool_jobs.failing)
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (10, 0)
    assert snapshot(p)["errors"] == sorted((u, DIED) for u in feeds)
    assert p.pool.started == 1 + pool.MAX_RESTARTS
    close(p)


def test_the_pool_starts_when_first_needed_and_lives_until_closed(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    """A first poll starts the workers as it begins fetching (its documents are all new);
    later polls use the same workers; closing the pipeline ends them. A small poll
    prepares in-process; a poll without news starts no pool."""
    p, _ = pooled(tmp_path, feed_server, clock)
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries, p.pooled) == (0, 10, True)
    first = workers(p)
    clock.advance(timedelta(hours=1))
    feed_server.serve(
        "/0.xml", rss([item(IRRELEVANT, "https://n0.example/2", clock.now, title="Later")])
    )
    stats = asyncio.run(p.poll())
    assert (stats.new_entries, stats.not_modified) == (1, 9)
    assert workers(p) == first and p.pool.started == 1
    p.close()
    assert not p.pool.running
    for pid in first:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    p.db.dispose()

    # As `monitor poll` runs again: nothing changed, no pool; a document changed, a pool.
    # (The service's pool waits for a changed document; a one-shot poll forks its
    # workers as it starts, while it has no thread, and they read nothing until needed.)
    again = Pipeline(
        p.settings, Database(p.settings.database.url or ""), clock=clock, service=SERVICE
    )
    clock.advance(timedelta(hours=1))
    stats = asyncio.run(again.poll())
    assert (stats.not_modified, again.pooled, again.pool.started) == (10, True, int(not SERVICE))
    clock.advance(timedelta(hours=1))
    feed_server.serve(
        "/1.xml", rss([item(IRRELEVANT, "https://n1.example/2", clock.now, title="Later")])
    )
    stats = asyncio.run(again.poll())
    assert (stats.new_entries, again.pool.started) == (1, 1)
    close(again)

    # One feed of eight enabled: under POOL_MIN_FEEDS, no pool is started.
    few = [
        feed_server.serve(
            f"/few{k}.xml",
            rss([item(IRRELEVANT, f"https://f{k}.example/1", clock.now, title=f"Few {k}")]),
        )
        for k in range(8)
    ]
    url = f"sqlite:///{tmp_path / 'few.db'}"
    db = Database(url)
    db.upgrade()
    settings = Settings(
        database={"url": url},
        service={"processes": 2},
        feeds=[{"url": u, "enabled": k == 0} for k, u in enumerate(few)],
    )
    p = Pipeline(settings, db, clock=clock, service=SERVICE)
    p.sync_feeds()
    pool.POOL_MIN_FEEDS = 16  # undone by the fixture's monkeypatch
    stats = asyncio.run(p.poll())
    assert (stats.feeds, stats.new_entries, p.pooled, p.pool.started) == (1, 1, False, 0)
    close(p)


@pytest.mark.parametrize("pooled_poll", [False, True], ids=["in-process", "pooled"])
def test_entries_stored_unchanged_are_not_matched_again(
    tmp_path: Path, feed_server: FeedServer, clock: Clock, pooled_poll: bool
) -> None:
    """Only new and revised entries are matched: in the storing thread, or in a worker
    that read what is stored from the database."""
    first = local_news("a.example", clock.now, 5, "Council news")
    url = feed_server.serve("/a.xml", rss(first))
    database = f"sqlite:///{tmp_path / 'matched.db'}"
    p = make(database, [url], clock, processes=2 if pooled_poll else 0)
    p.pool.job = pool_jobs.counting
    p.pool.processes = 1
    matched: list[str] = []
    real = p.matcher.match_article

    def counting(a: Any) -> Any:
        matched.append(a.title)
        return real(a)

    p.matcher.match_article = counting  # type: ignore[method-assign]
    log = pool_jobs.beside_database(database, ".matched")

    def count() -> int:
        if pooled_poll:
            n = sum(int(line) for line in log.read_text().split())
            log.unlink()
            return n
        n = len(matched)
        matched.clear()
        return n

    if pooled_poll:
        p.pool.start()  # a poll of one feed uses the pool once it runs
    asyncio.run(p.poll())
    assert count() == 5 and p.pooled is pooled_poll
    clock.advance(timedelta(minutes=10))
    revised = dict(first[0], description="A corrected account of the council meeting.")
    feed_server.serve(
        "/a.xml", rss([item(RELEVANT, "https://a.example/new", clock.now), revised, *first[1:]])
    )
    stats = asyncio.run(p.poll())
    assert count() == 2  # the new entry and the revised one
    assert (stats.new_entries, stats.updated_entries) == (1, 1)
    close(p)


def test_the_storing_process_of_a_pooled_poll_loads_no_parsing(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    """The pool parses and matches; the main process fetches and stores, so it never
    pays for importing the parsers or compiling the matcher (placing entries needs only
    the profile's bar and titles). Each poll in its own process, as `monitor poll` runs."""
    feeds = build_feeds(feed_server, clock)
    script = f"""
import asyncio, json, sys
from monitor import pool
from monitor.config import Settings
from monitor.db import Database
from monitor.pipeline import Pipeline
pool.POOL_MIN_FEEDS = 2
url = {f"sqlite:///{tmp_path / 'main.db'}"!r}
db = Database(url)
db.upgrade()
p = Pipeline(Settings(database={{"url": url}}, service={{"processes": 2}},
                      feeds=[{{"url": u}} for u in {feeds!r}]), db)
p.sync_feeds()
stats = asyncio.run(p.poll())
p.close()
asyncio.run(p.deliver_due())
compiled = "matcher" in vars(p)  # (a cached_property)
print(json.dumps([stats.fetched, stats.not_modified, p.pooled, compiled, sorted(sys.modules)]))
"""

    def poll() -> tuple[int, int, set[str]]:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        fetched, not_modified, pooled_poll, compiled, modules = json.loads(
            done.stdout.splitlines()[-1]
        )
        assert pooled_poll is True
        assert compiled is False
        return fetched, not_modified, set(modules)

    parsing = {
        "aiosmtplib",
        "feedparser",
        "chardet",
        "lxml",
        "monitor.parse.fast",
        "monitor.parse.generic",
    }
    fetched, _, modules = poll()  # cold: documents arrive prepared (their classes load)
    assert fetched == len(feeds) - 1 and parsing.isdisjoint(modules), parsing & modules
    # warm: every feed answers 304; the broken one's unchanged document fails again
    # without being read
    _, not_modified, modules = poll()
    quiet = parsing | {"monitor.match", "monitor.parse", "monitor.prepare", "monitor.normalize"}
    assert not_modified == len(feeds) - 1 and quiet.isdisjoint(modules), quiet & modules


def test_the_service_pool_runs_on_demand_and_a_one_shot_poll_has_one_per_core(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'n.db'}"
    db = Database(url)
    one_shot = Pipeline(Settings(database={"url": url}), db)
    service = Pipeline(Settings(database={"url": url}), db, service=True)
    chosen = Pipeline(Settings(database={"url": url}, service={"processes": 3}), db, service=True)
    assert (one_shot.pool.processes, service.pool.processes, chosen.pool.processes) == (
        os.cpu_count() or 1,
        os.cpu_count() or 1,
        3,
    )
    assert (one_shot.pool.on_demand, service.pool.on_demand, chosen.pool.on_demand) == (
        False,
        True,
        False,
    )
    db.dispose()


def helpers() -> set[int]:
    """The pids of multiprocessing's forkserver and resource tracker, where running."""
    from multiprocessing import forkserver, resource_tracker

    pids = {forkserver._forkserver._forkserver_pid, resource_tracker._resource_tracker._pid}
    return {pid for pid in pids if pid is not None}


def test_the_service_pool_runs_for_a_cold_start_or_a_large_document_and_then_ends(
    tmp_path: Path, feed_server: FeedServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `[service] processes` unset, the service reads a cold start's documents in the
    pool, then ends it with its forkserver; a warm tick's small documents are read in the
    storing thread, a large one in a pool started for it and ended after."""
    feeds = build_feeds(feed_server, clock)
    url = f"sqlite:///{tmp_path / 'demand.db'}"
    db = Database(url)
    db.upgrade()
    settings = Settings(database={"url": url}, feeds=[{"url": u} for u in feeds])
    p = Pipeline(settings, db, clock=clock, service=True)
    p.sync_feeds()
    stats = asyncio.run(p.poll())
    assert (stats.fetched, p.pooled, p.pool.started, p.pool.running) == (12, True, 1, False)
    assert not helpers()

    clock.advance(timedelta(hours=1))
    feed_server.serve(
        "/0.xml", rss([item(IRRELEVANT, "https://n0.example/2", clock.now, title="Later")])
    )
    stats = asyncio.run(p.poll())
    assert (stats.new_entries, p.pooled, p.pool.started) == (1, False, 1)
    assert not helpers()

    monkeypatch.setattr(pool, "INLINE_MAX", 100)  # every document is now a large one
    clock.advance(timedelta(hours=1))
    feed_server.serve(
        "/1.xml", rss([item(IRRELEVANT, "https://n1.example/2", clock.now, title="Large")])
    )
    stats = asyncio.run(p.poll())
    assert (stats.new_entries, p.pooled, p.pool.started, p.pool.running) == (1, False, 2, False)
    assert not helpers()
    with db.session() as s:
        titles = set(s.scalars(select(Entry.title)))
    assert {"Later", "Large"} <= titles
    close(p)
