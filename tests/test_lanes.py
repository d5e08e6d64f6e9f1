"""Large polls in lanes (worker processes that fetch and prepare): a large poll must store,
cluster and alert exactly as an in-process one does, and a dying lane must cost the
document it was reading, not the poll."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor import lanes
from monitor.config import Settings
from monitor.db import Database
from monitor.fetch import FetchOptions, FetchRequest
from monitor.lanes import DIED, Lanes
from monitor.models import Alert, Entry, Feed
from monitor.pipeline import Pipeline
from tests.conftest import Clock, FeedServer, rss
from tests.test_pipeline import IRRELEVANT, OTHER_RELEVANT, RELEVANT, item


def build_feeds(server: FeedServer, clock: Clock) -> list[str]:
    """Twelve feeds: the same two stories told by several of them, local news, a broken one."""
    urls = []
    for n in range(12):
        at = clock.now - timedelta(minutes=5 * n)
        items = [
            item(
                IRRELEVANT,
                f"https://n{n}.example/local/{k}",
                at - timedelta(hours=k),
                title=f"{IRRELEVANT['title']} ({n}/{k})",
            )
            for k in range(6)
        ]
        if n % 3 == 0:
            items.append(item(RELEVANT, f"https://n{n}.example/talks", at))
        if n % 4 == 1:
            items.append(item(OTHER_RELEVANT, f"https://n{n}.example/strike", at))
        urls.append(server.serve(f"/{n}.xml", rss(items, title=f"Outlet {n}")))
    urls.append(server.serve("/broken.xml", "<html>not a feed</html>", content_type="text/html"))
    return urls


def make(url: str, feeds: list[str], clock: Clock, processes: int) -> Pipeline:
    db = Database(url)
    db.upgrade()
    settings = Settings(
        database={"url": url},
        service={"processes": processes},
        feeds=[{"url": u, "name": f"feed {i}"} for i, u in enumerate(feeds)],
    )
    p = Pipeline(settings, db, clock=clock)
    p.sync_feeds()
    return p


def snapshot(p: Pipeline) -> dict[str, Any]:
    """What a poll stored, as far as it does not depend on the order feeds arrive in:
    lanes deliver them in another order than one process, and which outlet's copy of a
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


def counted(p: Pipeline) -> list[int]:
    """Record how many polls ran in lanes."""
    runs: list[int] = []
    real = p.lanes.run

    def run(*args: Any) -> Any:
        runs.append(1)
        return real(*args)

    p.lanes.run = run  # type: ignore[method-assign]
    return runs


def test_a_poll_in_lanes_stores_what_an_in_process_poll_stores(
    db_url: str,
    tmp_path: Path,
    feed_server: FeedServer,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In lanes on SQLite and on PostgreSQL, against an in-process poll on SQLite."""
    feeds = build_feeds(feed_server, clock)
    monkeypatch.setattr(lanes, "LANES_MIN_FEEDS", 2)
    inline = make(f"sqlite:///{tmp_path / 'inline.db'}", feeds, clock, processes=0)
    laned = make(db_url, feeds, clock, processes=2)
    runs = counted(laned)
    stats = [asyncio.run(p.poll()) for p in (inline, laned)]
    assert stats[0] == stats[1] and runs == [1]
    first = snapshot(inline)
    assert snapshot(laned) == first
    # and the run did something worth comparing: two stories, alerted once each
    assert len(first["alerts"]) == 2 and stats[0].developments == 2
    assert "not a feed" in first["errors"][0][1]

    # A second poll: some documents gained entries, one entry was revised, the rest are
    # unchanged (304s); lanes read what is stored from the database.
    clock.advance(timedelta(minutes=10))
    for n in (0, 1, 5):
        items = [
            item(
                IRRELEVANT,
                f"https://n{n}.example/local/{k}",
                clock.now - timedelta(hours=k),
                title=f"{IRRELEVANT['title']} ({n}/{k})",
            )
            for k in range(6)
        ]
        items[2]["description"] = "A corrected account of the council meeting."
        items.append(item(OTHER_RELEVANT, f"https://n{n}.example/later", clock.now))
        feed_server.serve(f"/{n}.xml", rss(items, title=f"Outlet {n}"))
    stats = [asyncio.run(p.poll()) for p in (inline, laned)]
    assert stats[0] == stats[1] and runs == [1, 1]
    assert (stats[0].new_entries, stats[0].updated_entries) == (3, 3)
    assert snapshot(laned) == snapshot(inline)
    for p in (inline, laned):
        p.db.dispose()


def lane_command(code: str) -> list[str]:
    """A lane that runs `code` first (to misbehave), then the real lane."""
    return [sys.executable, "-c", code + "\nfrom monitor.lanes import lane_main; lane_main()"]


def laned(
    tmp_path: Path, feed_server: FeedServer, clock: Clock, code: str, n: int = 10
) -> tuple[Pipeline, list[str]]:
    feeds = [
        feed_server.serve(
            f"/{k}.xml",
            rss([item(IRRELEVANT, f"https://n{k}.example/1", clock.now, title=f"Local news {k}")]),
        )
        for k in range(n)
    ]
    p = make(f"sqlite:///{tmp_path / 'laned.db'}", feeds, clock, processes=2)
    p.lanes.command = lane_command(code)
    return p, feeds


def test_a_lane_dying_on_a_document_costs_that_feed_only(
    tmp_path: Path, feed_server: FeedServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lanes, "LANES_MIN_FEEDS", 2)
    # A lane reading the document titled "Local news 3" or "Local news 4" dies (as if
    # killed for memory). Feeds of one host are dealt out in turn, so one of the two is
    # fetched by the lane that dies on it, the other here and sent to a lane to prepare;
    # what the dead lanes had not answered goes to new ones.
    p, feeds = laned(
        tmp_path,
        feed_server,
        clock,
        """
import os, monitor.prepare
real = monitor.prepare.read_document
def dying(body, *args):
    if b"Local news 3<" in body or b"Local news 4<" in body:
        os._exit(9)
    return real(body, *args)
monitor.prepare.read_document = dying""",
    )
    requests = [FetchRequest(k, url) for k, url in enumerate(feeds)]
    (here, _), (there, _) = lanes.split(requests, p.fetch_options, 2)
    assert {3, 4} & {r.feed_id for r in here} and {3, 4} & {r.feed_id for r in there}
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.fetched, stats.new_entries) == (2, 8, 8)
    assert snapshot(p)["errors"] == sorted([(feeds[3], DIED), (feeds[4], DIED)])
    p.db.dispose()


def test_lanes_leave_sigterm_and_sigint_to_the_parent(
    tmp_path: Path, feed_server: FeedServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lanes, "LANES_MIN_FEEDS", 2)
    p, _ = laned(
        tmp_path,
        feed_server,
        clock,
        """
import os, signal, monitor.lanes
real = monitor.lanes._run_share
async def signalled(*args):
    os.kill(os.getpid(), signal.SIGTERM)  # as systemd and Ctrl-C signal the whole group
    os.kill(os.getpid(), signal.SIGINT)
    await real(*args)
monitor.lanes._run_share = signalled""",
    )
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (0, 10)
    p.db.dispose()


def test_a_lane_that_dies_at_start_is_replaced_and_one_that_keeps_dying_fails_its_feeds(
    tmp_path: Path, feed_server: FeedServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lanes, "LANES_MIN_FEEDS", 2)
    marker = tmp_path / "died-once"
    p, _ = laned(
        tmp_path,
        feed_server,
        clock,
        f"""
import os, pathlib
marker = pathlib.Path({str(marker)!r})
if not marker.exists():
    marker.touch()
    os._exit(3)""",
    )
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (0, 10)  # the new lane did the work
    p.db.dispose()

    (tmp_path / "laned.db").unlink()
    p, feeds = laned(tmp_path, feed_server, clock, "import os; os._exit(3)")
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (10, 0)
    assert snapshot(p)["errors"] == sorted((u, DIED) for u in feeds)
    p.db.dispose()


def spawns(p: Pipeline) -> list[subprocess.Popen[bytes]]:
    """Record every lane process the pipeline starts."""
    started: list[subprocess.Popen[bytes]] = []
    real = p.lanes._spawn

    def spawn() -> subprocess.Popen[bytes]:
        started.append(real())
        return started[-1]

    p.lanes._spawn = spawn  # type: ignore[method-assign]
    return started


def test_lanes_started_ahead_do_the_poll_or_are_ended(
    tmp_path: Path, feed_server: FeedServer, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`poll` starts the lanes before it claims the feeds; the poll hands them their
    shares, and when it claims too few feeds for lanes, they are ended, not left behind.
    This process fetches a share itself: a lane prepares what changed in it, started only
    when something did."""
    monkeypatch.setattr(lanes, "LANES_MIN_FEEDS", 2)
    p, _ = laned(tmp_path, feed_server, clock, "")
    started = spawns(p)
    p.expect_poll()
    assert len(started) == 1 and p.lanes.ready == started  # two shares, one fetched here
    stats = asyncio.run(p.poll())
    assert (stats.errors, stats.new_entries) == (0, 10)
    assert len(started) == 2 and p.lanes.ready == []  # and one to prepare that share
    assert all(process.returncode == 0 for process in started)
    clock.advance(timedelta(minutes=10))
    stats = asyncio.run(p.poll())  # every feed answers 304: nothing to prepare
    assert stats.not_modified == 10 and len(started) == 3
    p.db.dispose()

    # Eight feeds configured, one left enabled: lanes are expected, then not needed.
    monkeypatch.setattr(lanes, "LANES_MIN_FEEDS", 8)
    feeds = [
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
        feeds=[{"url": u, "enabled": k == 0} for k, u in enumerate(feeds)],
    )
    p = Pipeline(settings, db, clock=clock)
    p.sync_feeds()
    started = spawns(p)
    stats = asyncio.run(p.poll())
    assert (stats.feeds, stats.new_entries) == (1, 1)
    assert len(started) == 1 and p.lanes.ready == [] and p.laned is False
    assert all(process.returncode is not None for process in started)  # ended and reaped
    stats = asyncio.run(p.poll())  # the next poll expects what this one found
    assert len(started) == 1
    db.dispose()


def test_split_divides_the_requests_and_the_limits_between_lanes() -> None:
    many = [FetchRequest(k, f"https://big.example/{k}.xml") for k in range(7)]
    few = [FetchRequest(10 + k, f"https://small{k}.example/feed") for k in range(3)]
    options = FetchOptions(concurrency=32, per_host=2)
    shares = lanes.split(many + few, options, 2)
    assert [o for _, o in shares] == [FetchOptions(concurrency=16, per_host=1)] * 2
    got = [sorted(r.feed_id for r in share) for share, _ in shares]
    assert sorted(x for share in got for x in share) == [*range(7), 10, 11, 12]
    assert [len(share) for share in got] == [5, 5]
    for share in got:  # the big host is dealt out to both lanes, one connection each
        assert 3 <= sum(1 for x in share if x < 7) <= 4
    # a host allowed one connection in all goes whole to one lane
    shares = lanes.split(many, FetchOptions(per_host=1), 2)
    assert [len(share) for share, _ in shares] == [7]
    assert Lanes(0, None, None, lambda feed, guids: {}).use(1000) is False


def test_entries_stored_unchanged_are_not_matched_again(
    sqlite_url: str, feed_server: FeedServer, clock: Clock
) -> None:
    first = [
        item(
            IRRELEVANT,
            f"https://a.example/{k}",
            clock.now - timedelta(hours=k),
            title=f"Council news {k}",
        )
        for k in range(5)
    ]
    url = feed_server.serve("/a.xml", rss(first))
    db = Database(sqlite_url)
    db.upgrade()
    p = Pipeline(
        Settings(database={"url": sqlite_url}, feeds=[{"url": url, "name": "a"}]), db, clock=clock
    )
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
    feed_server.serve(
        "/a.xml", rss([item(RELEVANT, "https://a.example/new", clock.now), revised, *first[1:]])
    )
    stats = asyncio.run(p.poll())
    assert sorted(matched) == sorted([RELEVANT["title"], "Council news 0"])
    assert (stats.new_entries, stats.updated_entries) == (1, 1)
    db.dispose()


def test_the_storing_process_of_a_laned_poll_loads_no_fetching_or_parsing(
    tmp_path: Path, feed_server: FeedServer, clock: Clock
) -> None:
    """Lanes parse; the main process fetches a share and stores, so it never pays for
    importing the parsers, and in a poll without news, nor the matcher (a tenth of a
    second of a warm poll). Each poll in its own process, as `monitor poll` runs."""
    feeds = build_feeds(feed_server, clock)
    script = f"""
import asyncio, json, sys
from monitor import lanes
from monitor.config import Settings
from monitor.db import Database
from monitor.pipeline import Pipeline
lanes.LANES_MIN_FEEDS = 2
url = {f"sqlite:///{tmp_path / 'main.db'}"!r}
db = Database(url)
db.upgrade()
p = Pipeline(Settings(database={{"url": url}}, service={{"processes": 2}},
                      feeds=[{{"url": u}} for u in {feeds!r}]), db)
p.sync_feeds()
stats = asyncio.run(p.poll())
asyncio.run(p.deliver_due())
print(json.dumps([stats.fetched, stats.not_modified, p.laned, sorted(sys.modules)]))
"""

    def poll() -> tuple[int, int, set[str]]:
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        )
        fetched, not_modified, laned_poll, modules = json.loads(done.stdout.splitlines()[-1])
        assert laned_poll is True
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
