"""Queries of store.py that the pipeline's speed relies on, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update
from sqlalchemy.dialects import sqlite

from monitor import store
from monitor.cluster import features, features_from_json
from monitor.db import Database
from monitor.match import Matcher, load_profile
from monitor.models import Development, Entry, Feed, UTCDateTime
from monitor.normalize import Article
from monitor.rows import QuietRows, encode_datetime

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def article(n: int, at: datetime) -> Article:
    return Article(guid=f"g{n}", url=f"https://a.example/{n}",
                   canonical_url=f"https://a.example/{n}", title=f"Story {n}", text="Text.",
                   summary_html="<p>Text.</p>", language="en", published_at=at,
                   updated_at=None, date_estimated=False, content_hash=f"h{n}", author=None)


def quiet_rows(dialect: str, articles: list[Article]) -> QuietRows:
    rows = QuietRows()
    matcher = Matcher(load_profile())
    for a in articles:
        result = matcher.match_article(a)
        rows.add(dialect, a, result, features(result, a.language, a.title))
    return rows


def test_recent_entries_bring_every_member_and_only_the_latest_background(
        database: Database) -> None:
    dialect = database.engine.dialect.name
    with database.session() as s:
        feed = Feed(url="https://a.example/feed", name="a")
        dev = Development(title="An event")
        s.add_all([feed, dev])
        s.flush()
        articles = [article(n, T0 + timedelta(minutes=n)) for n in range(1, 9)]
        articles.append(article(0, T0 - timedelta(days=30)))
        ids = store.insert_rows(s, feed.id, quiet_rows(dialect, articles).rows, T0)
        by_n = dict(zip([*range(1, 9), 0], ids, strict=True))
        s.execute(update(Entry).where(Entry.id.in_([by_n[1], by_n[2]]))
                  .values(development_id=dev.id))
    with database.session() as s:
        got = [r.id for r in store.recent_entries(s, T0 - timedelta(days=1), 0, background=3)]
        assert got == [by_n[n] for n in (1, 2, 6, 7, 8)]  # members, then the 3 latest, by id
        after = [r.id for r in store.recent_entries(s, T0 - timedelta(days=1), by_n[6], 3)]
        assert after == [by_n[7], by_n[8]]


def test_bulk_inserted_rows_read_back_as_the_orm_writes_them(database: Database) -> None:
    """The driver-level insert must store what the ORM would: same values, same types,
    datetimes comparable in SQL (on SQLite, text in SQLAlchemy's own format)."""
    dialect = database.engine.dialect.name
    later = T0 + timedelta(hours=2, microseconds=1500)
    bulk = [article(1, T0), replace(article(2, later), updated_at=later, author="A. Writer",
                                    date_estimated=True, language=None, url=None,
                                    canonical_url=None)]
    orm = [replace(a, guid="orm-" + a.guid) for a in bulk]
    with database.session() as s:
        feed = Feed(url="https://a.example/feed", name="a")
        s.add(feed)
        s.flush()
        ids = store.insert_rows(s, feed.id, quiet_rows(dialect, bulk).rows, T0)
        for a in orm:
            s.add(store.new_entry(feed.id, a, T0))
    assert len(ids) == 2 and ids[0] < ids[1]
    with database.session() as s:
        got = {e.guid: e for e in s.scalars(select(Entry))}
        assert [got[a.guid].id for a in bulk] == ids
        for a in bulk:
            row, twin = got[a.guid], got["orm-" + a.guid]
            for column in ("url", "canonical_url", "title", "summary_html", "text", "language",
                           "author", "content_hash", "published_at", "updated_at",
                           "date_estimated", "first_seen_at", "last_seen_at", "revision",
                           "feed_id"):
                assert getattr(row, column) == getattr(twin, column), column
            assert row.join_reason == "off-topic" and row.relevant is False
            assert features_from_json(row.cluster_features or {}).words
        # SQL comparisons see both kinds of row alike
        since = s.scalars(select(Entry.guid).where(Entry.published_at >= later)
                          .order_by(Entry.guid))
        assert list(since) == ["g2", "orm-g2"]


def test_sqlite_datetimes_are_encoded_as_sqlalchemy_stores_them() -> None:
    dialect = sqlite.dialect()
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    for d in (T0, T0 + timedelta(microseconds=7), datetime(1999, 12, 31, 23, 59, 59, 999999,
                                                           tzinfo=timezone(timedelta(hours=3)))):
        assert encode_datetime("sqlite", d) == process(d)
    assert encode_datetime("postgresql", T0) == T0
    with pytest.raises(ValueError):
        encode_datetime("sqlite", datetime(2026, 1, 1))
