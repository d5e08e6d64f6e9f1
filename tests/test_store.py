"""Queries of store.py that the pipeline's speed relies on, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor import store
from monitor.db import Database
from monitor.models import Development, Feed
from monitor.normalize import Article

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def article(n: int, at: datetime) -> Article:
    return Article(guid=f"g{n}", url=f"https://a.example/{n}",
                   canonical_url=f"https://a.example/{n}", title=f"Story {n}", text="Text.",
                   summary_html="<p>Text.</p>", language="en", published_at=at,
                   updated_at=None, date_estimated=False, content_hash=f"h{n}", author=None)


def test_recent_entries_bring_every_member_and_only_the_latest_background(
        database: Database) -> None:
    with database.session() as s:
        feed = Feed(url="https://a.example/feed", name="a")
        dev = Development(title="An event")
        s.add_all([feed, dev])
        s.flush()
        rows = [(article(n, T0 + timedelta(minutes=n)),
                 {"development_id": dev.id if n in (1, 2) else None})
                for n in range(1, 9)]
        rows.append((article(0, T0 - timedelta(days=30)), {"development_id": None}))
        ids = store.insert_entries(s, feed.id, rows, T0)
    by_n = dict(zip([*range(1, 9), 0], ids, strict=True))
    with database.session() as s:
        got = [r.id for r in store.recent_entries(s, T0 - timedelta(days=1), 0, background=3)]
        assert got == [by_n[n] for n in (1, 2, 6, 7, 8)]  # members, then the 3 latest, by id
        after = [r.id for r in store.recent_entries(s, T0 - timedelta(days=1), by_n[6], 3)]
        assert after == [by_n[7], by_n[8]]
