"""Database faults: a connection killed mid-poll, a SQLite file locked by another writer."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, func, select, text

from monitor import store
from monitor.db import Database
from monitor.models import Entry, Feed
from tests.conftest import Clock, FeedServer, rss
from tests.test_pipeline import RELEVANT, item, make


def test_postgres_connection_killed_mid_poll_fails_cleanly_then_recovers(
    pg_url: str, clock: Clock, feed_server: FeedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(pg_url)
    db.upgrade()
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    p = make(db, clock, [url], None)
    real_lock = store.lock_clustering
    killer = create_engine(pg_url, isolation_level="AUTOCOMMIT")

    def lock_then_die(s: Any) -> None:
        real_lock(s)
        pid = s.execute(text("SELECT pg_backend_pid()")).scalar()
        with killer.connect() as c:  # as a server restart would: the session's backend dies
            c.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    monkeypatch.setattr(store, "lock_clustering", lock_then_die)
    stats = asyncio.run(p.poll())
    assert stats.errors == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Entry)) == 0  # nothing half-written
        assert "processing failed" in (s.scalars(select(Feed)).one().last_error or "")
    monkeypatch.setattr(store, "lock_clustering", real_lock)
    with db.session() as s:
        s.scalars(select(Feed)).one().next_poll_at = clock.now
    stats = asyncio.run(p.poll())
    assert stats.errors == 0 and stats.new_entries == 1
    killer.dispose()
    db.dispose()


def test_sqlite_busy_is_waited_out(sqlite_url: str, clock: Clock, feed_server: FeedServer) -> None:
    db = Database(sqlite_url)
    db.upgrade()
    url = feed_server.serve("/a.xml", rss([item(RELEVANT, "https://a.example/1", clock.now)]))
    p = make(db, clock, [url], None)
    other = sqlite3.connect(
        sqlite_url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock…
    threading.Timer(1.5, lambda: other.execute("COMMIT")).start()  # …for 1.5 s
    started = time.monotonic()
    stats = asyncio.run(p.poll())
    assert stats.errors == 0 and stats.new_entries == 1
    assert time.monotonic() - started >= 1.0
    other.close()
    db.dispose()
