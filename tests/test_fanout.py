"""Fetching a large one-shot poll in several processes (fanout.py): every feed answered as
one process would answer it, no host asked more often at once than `per_host` allows, a
helper's death costing its feeds one poll; and a forked child never touching the
parent's database connections."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from monitor import fanout
from monitor.db import Database
from monitor.fanout import Fanout, helpers_for, shares
from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream, host_of
from tests.conftest import FeedServer, rss
from tests.test_pipeline import IRRELEVANT, item


def requests_over(hosts: dict[str, int]) -> list[FetchRequest]:
    out = []
    for host, n in hosts.items():
        out += [FetchRequest(len(out) + k, f"https://{host}/{k}.xml") for k in range(n)]
    return out


@pytest.mark.parametrize("processes", [1, 2, 3, 5])
@pytest.mark.parametrize("per_host", [1, 2, 3, 4, 8])
def test_shares_deal_every_request_once_and_keep_each_host_within_per_host(
    processes: int, per_host: int
) -> None:
    hosts = {"big.example": 400, **{f"s{k}.example": 7 for k in range(60)}}
    reqs = requests_over(hosts)
    dealt = shares(reqs, processes, per_host)
    assert sorted(r.feed_id for share in dealt for r in share) == [r.feed_id for r in reqs]
    each = max(1, per_host // processes)  # what each process allows a host at once
    for host in hosts:
        holders = sum(any(host_of(r.url) == host for r in share) for share in dealt)
        assert each * holders <= per_host, (host, holders)
    # Hosts go where the least is: no share is larger than even, or than the big host's
    # part (it may go to only so many processes), by more than one small host.
    spread = min(processes, per_host // each)
    sizes = [len(share) for share in dealt]
    assert max(sizes) <= max(-(-400 // spread), -(-len(reqs) // processes)) + 7, sizes


def test_a_poll_forks_helpers_only_when_each_process_gets_a_worthwhile_share() -> None:
    assert helpers_for(10_000, 1) == 0  # one process fetches: the main one
    assert helpers_for(fanout.SHARE_MIN * 2 - 1, 4) == 0
    assert helpers_for(fanout.SHARE_MIN * 2, 4) == 2
    assert helpers_for(fanout.SHARE_MIN * 100, 4) == 4


def serve_feeds(server: FeedServer, n: int, delay: float = 0.0) -> list[FetchRequest]:
    reqs = []
    for k in range(n):
        at = datetime(2026, 1, 1, tzinfo=UTC)
        body = rss([item(IRRELEVANT, f"https://n{k}.example/1", at, title=f"Local {k}")])
        reqs.append(FetchRequest(k, server.serve(f"/{k}.xml", body, delay=delay)))
    return reqs


async def collect(results: object) -> list[FetchResult]:
    return [r async for r in results]  # type: ignore[attr-defined]


def answers(results: list[FetchResult]) -> list[tuple[int, int | None, str | None, str | None]]:
    return sorted((r.feed_id, r.status, r.body_hash, r.error) for r in results)


def test_a_fanned_fetch_answers_every_feed_as_one_process_does(feed_server: FeedServer) -> None:
    reqs = serve_feeds(feed_server, 40)
    opts = FetchOptions(per_host=4)
    alone = asyncio.run(collect(fetch_stream(reqs, opts)))
    fanned = asyncio.run(collect(Fanout(reqs, opts, 3).results()))
    assert answers(fanned) == answers(alone)
    assert Counter(r.status for r in fanned) == {200: 40}
    # With validators, the same again: every feed answers 304 to each.
    again = [
        FetchRequest(r.feed_id, r.url, etag=a.etag)
        for r, a in zip(reqs, sorted(alone, key=lambda a: a.feed_id), strict=True)
    ]
    assert {r.status for r in asyncio.run(collect(Fanout(again, opts, 3).results()))} == {304}


def test_helpers_forked_after_preload_load_nothing_to_fetch(
    feed_server: FeedServer, tmp_path: Path
) -> None:
    """What a first request loads is loaded once, before the helpers fork: a helper then
    loads no module of its own. In a fresh interpreter, as `monitor poll` runs."""
    reqs = serve_feeds(feed_server, 6)
    script = f"""
import asyncio, json, os, sys
from monitor import fanout
from monitor.fetch import FetchOptions, FetchRequest, preload
real = fanout.fetch_stream

async def watched(requests, opts):
    before = set(sys.modules)
    async for result in real(requests, opts):
        yield result
    with open(os.path.join({str(tmp_path)!r}, str(os.getpid())), "w") as out:
        json.dump(sorted(set(sys.modules) - before), out)

fanout.fetch_stream = watched
reqs = [FetchRequest(i, u) for i, u in {[(r.feed_id, r.url) for r in reqs]!r}]

async def poll():
    await preload()
    return [r async for r in fanout.Fanout(reqs, FetchOptions(per_host=4), 2).results()]

print(sorted(r.status for r in asyncio.run(poll())))
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.split("\n")[0] == str([200] * 6)
    loaded = [json.loads(f.read_text()) for f in tmp_path.iterdir()]
    assert len(loaded) == 2  # one report per helper
    assert loaded == [[], []], loaded


def test_a_helper_that_dies_costs_its_feeds_one_poll(feed_server: FeedServer) -> None:
    reqs = serve_feeds(feed_server, 8, delay=0.5)
    fan = Fanout(reqs, FetchOptions(per_host=8), 2)
    (helper, _, theirs), *_ = fan.helpers
    assert helper.pid is not None
    os.kill(helper.pid, signal.SIGKILL)  # before any answer (each takes half a second)
    results = asyncio.run(collect(fan.results()))
    assert sorted(r.feed_id for r in results) == list(range(8))
    lost = {r.feed_id for r in results if r.error_kind == "worker"}
    assert lost == {r.feed_id for r in theirs} and lost
    assert all(r.status == 200 for r in results if r.feed_id not in lost)
    assert not helper.is_alive()


def test_a_fanned_poll_stores_what_a_single_process_poll_stores(
    tmp_path: object, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import Clock
    from tests.test_pool import build_feeds, make, snapshot

    monkeypatch.setattr(fanout, "SHARE_MIN", 2)
    clock = Clock()
    feeds = build_feeds(feed_server, clock)
    single = make(f"sqlite:///{tmp_path}/single.db", feeds, clock, processes=0)
    fanned = make(f"sqlite:///{tmp_path}/fanned.db", feeds, clock, processes=0)
    fanned.poller.fetchers = 3
    for p in (single, fanned):
        stats = asyncio.run(p.poll())
        assert (stats.feeds, stats.errors) == (len(feeds), 1)  # the broken one
    assert snapshot(fanned) == snapshot(single)
    clock.advance(timedelta(hours=1))
    assert asyncio.run(fanned.poll()).not_modified == len(feeds) - 1
    for p in (single, fanned):
        p.close()
        p.db.dispose()


def test_a_forked_child_leaves_the_parents_database_connections_alone(pg_url: str) -> None:
    """A child that disposes of the engine it inherited (as its exit may) must not end
    the parent's pooled connection: the parent keeps the same server session."""
    db = Database(pg_url)

    def backend() -> int:
        with db.engine.connect() as c:
            return int(c.execute(text("select pg_backend_pid()")).scalar_one())

    before = backend()
    pid = os.fork()
    if pid == 0:  # the child: close whatever the pool holds, then leave
        try:
            db.engine.dispose()
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend() == before
    db.dispose()
