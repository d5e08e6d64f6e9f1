"""Queries of store.py that the pipeline's speed relies on, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Text, cast, event, select, update
from sqlalchemy.dialects import sqlite

from monitor import store
from monitor.cluster import features, features_from_json
from monitor.config import FeedConfig
from monitor.db import Database
from monitor.match import Matcher, load_profile
from monitor.models import Development, Entry, Feed, UTCDateTime
from monitor.normalize import Article
from monitor.rows import QuietRows, encode_datetime

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def article(n: int, at: datetime) -> Article:
    return Article(
        guid=f"g{n}",
        url=f"https://a.example/{n}",
        canonical_url=f"https://a.example/{n}",
        title=f"Story {n}",
        text="Text.",
        summary_html="<p>Text.</p>",
        language="en",
        published_at=at,
        updated_at=None,
        date_estimated=False,
        content_hash=f"h{n}",
        author=None,
    )


def quiet_rows(articles: list[Article]) -> QuietRows:
    rows = QuietRows()
    matcher = Matcher(load_profile())
    for a in articles:
        result = matcher.match_article(a)
        rows.add(a, result, features(result, a.language, a.title))
    return rows


def test_recent_entries_bring_every_member_and_only_the_latest_background(
    database: Database,
) -> None:
    with database.session() as s:
        feed = Feed(url="https://a.example/feed", name="a")
        dev = Development(title="An event")
        s.add_all([feed, dev])
        s.flush()
        articles = [article(n, T0 + timedelta(minutes=n)) for n in range(1, 9)]
        articles.append(article(0, T0 - timedelta(days=30)))
        ids = store.insert_rows(s, feed.id, quiet_rows(articles).rows, T0)
        by_n = dict(zip([*range(1, 9), 0], ids, strict=True))
        s.execute(
            update(Entry).where(Entry.id.in_([by_n[1], by_n[2]])).values(development_id=dev.id)
        )
    since = T0 - timedelta(days=1)
    with database.session() as s:
        got = [r.id for r in store.recent_entries(s, since, 0, by_n[0], background=3)]
        assert got == [by_n[n] for n in (1, 2, 6, 7, 8)]  # members, then the 3 latest, by id
        after = [r.id for r in store.recent_entries(s, since, by_n[6], by_n[0], 3)]
        assert after == [by_n[7], by_n[8]]
        # Up to a bound: what a catch-up without the lock reads, whatever commits meanwhile.
        upto = [r.id for r in store.recent_entries(s, since, 0, by_n[7], 3)]
        assert upto == [by_n[n] for n in (1, 2, 5, 6, 7)]
        assert store.last_entry_id(s) == max(ids)


def test_bulk_inserted_rows_read_back_as_the_orm_writes_them(database: Database) -> None:
    """The driver-level insert must store what the ORM would: same values, same types,
    datetimes comparable in SQL (on SQLite, text in SQLAlchemy's own format)."""
    later = T0 + timedelta(hours=2, microseconds=1500)
    bulk = [
        article(1, T0),
        replace(
            article(2, later),
            updated_at=later,
            author="A. Writer",
            date_estimated=True,
            language=None,
            url=None,
            canonical_url=None,
        ),
    ]
    orm = [replace(a, guid="orm-" + a.guid) for a in bulk]
    with database.session() as s:
        feed = Feed(url="https://a.example/feed", name="a")
        s.add(feed)
        s.flush()
        ids = store.insert_rows(s, feed.id, quiet_rows(bulk).rows, T0)
        for a in orm:
            s.add(store.new_entry(feed.id, a, T0))
    assert len(ids) == 2 and ids[0] < ids[1]
    with database.session() as s:
        got = {e.guid: e for e in s.scalars(select(Entry))}
        assert [got[a.guid].id for a in bulk] == ids
        for a in bulk:
            row, twin = got[a.guid], got["orm-" + a.guid]
            for column in (
                "url",
                "canonical_url",
                "title",
                "summary_html",
                "text",
                "language",
                "author",
                "content_hash",
                "published_at",
                "updated_at",
                "date_estimated",
                "first_seen_at",
                "last_seen_at",
                "revision",
                "feed_id",
            ):
                assert getattr(row, column) == getattr(twin, column), column
            assert row.join_reason == "off-topic" and row.relevant is False
            assert features_from_json(row.cluster_features or {}).words
        # SQL comparisons see both kinds of row alike
        since = s.scalars(
            select(Entry.guid).where(Entry.published_at >= later).order_by(Entry.guid)
        )
        assert list(since) == ["g2", "orm-g2"]


def test_json_columns_keep_any_value_whichever_encoder_writes_it(database: Database) -> None:
    """JSON columns are written and read by orjson (jsoncodec.py); what it declines (an
    integer beyond 64 bits) falls back to the standard library. Either way a value reads
    back as it was written, words in any script as themselves."""
    from monitor import jsoncodec

    values = [
        {"w": {"израиль": 2, "sochi": 1}, "n": ["2021"], "x": []},
        {"big": 2**70, "ratio": 0.25, "nested": [{"a": None}], "0": True},
    ]
    assert "израиль" in jsoncodec.dumps(values[0])  # not escaped
    assert jsoncodec.loads(jsoncodec.dumps(values[1])) == values[1]
    with database.session() as s:
        feed = Feed(url="https://a.example/feed", name="a")
        s.add(feed)
        s.flush()
        for n, value in enumerate(values):
            row = store.new_entry(feed.id, article(n, T0), T0)
            row.cluster_features = value
            s.add(row)
    with database.session() as s:
        got = [e.cluster_features for e in s.scalars(select(Entry).order_by(Entry.id))]
        stored = s.scalars(select(cast(Entry.cluster_features, Text)).order_by(Entry.id))
        assert "израиль" in next(iter(stored))  # the engine writes through jsoncodec
    assert got == values


def test_sqlite_datetimes_are_encoded_as_sqlalchemy_stores_them() -> None:
    dialect = sqlite.dialect()
    process = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert process is not None
    for d in (
        T0,
        T0 + timedelta(microseconds=7),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=timezone(timedelta(hours=3))),
    ):
        assert encode_datetime("sqlite", d) == process(d)
    assert encode_datetime("postgresql", T0) == T0
    with pytest.raises(ValueError):
        encode_datetime("sqlite", datetime(2026, 1, 1))


def test_sync_feeds_follows_the_config_and_writes_only_what_changed(database: Database) -> None:
    def config(*feeds: dict[str, object]) -> list[FeedConfig]:
        return [FeedConfig.model_validate(f) for f in feeds]

    def rows() -> dict[str, tuple[object, ...]]:
        with database.session() as s:
            return {
                f.url: (f.name, f.enabled, f.interval_seconds, f.adaptive, f.origin, f.next_poll_at)
                for f in s.scalars(select(Feed))
            }

    a, b, c, gone = (f"https://{n}.example/feed" for n in ("a", "b", "c", "gone"))
    with database.session() as s:
        store.sync_feeds(
            s, config({"url": a, "name": "A", "interval": "10m"}, {"url": b}, {"url": gone}), T0
        )
        s.add(Feed(url=c, name="added by hand", origin="cli"))
    assert rows()[a] == ("A", True, 600, False, "config", T0)
    assert rows()[b][2:4] == (600, True)  # no interval: it follows the feed's rate
    with database.session() as s:  # the server said 410 Gone
        s.execute(update(Feed).where(Feed.url == gone).values(last_status=410, enabled=False))

    statements: list[str] = []
    later = T0 + timedelta(hours=1)
    with database.session() as s:
        event.listen(
            s.connection(), "before_cursor_execute", lambda *args: statements.append(args[2])
        )
        store.sync_feeds(
            s, config({"url": a, "name": "A", "interval": "10m"}, {"url": b}, {"url": gone}), later
        )
    assert [q for q in statements if not q.lstrip().upper().startswith("SELECT")] == []

    with database.session() as s:
        store.sync_feeds(
            s, config({"url": a, "name": "A2", "interval": "2m"}, {"url": gone}), later
        )
    after = rows()
    assert after[a] == ("A2", True, 120, False, "config", T0)  # already due: stays due
    assert after[b][1] is False  # left the file: disabled, kept
    assert after[gone][1] is False  # gone stays gone while its URL is the same
    assert after[c] == ("added by hand", True, 600, False, "cli", None)


def test_claim_feeds_leases_each_feed_to_one_owner(database: Database) -> None:
    with database.session() as s:
        s.add_all(
            [
                Feed(url=f"https://{n}.example/feed", next_poll_at=T0 + timedelta(minutes=n))
                for n in range(3)
            ]
            + [Feed(url="https://off.example/feed", enabled=False)]
        )
    lease = timedelta(minutes=5)
    with database.session() as s:
        due = store.claim_feeds(s, T0 + timedelta(minutes=1), "w1", lease, only_due=True)
        assert [f.url for f in due] == ["https://0.example/feed", "https://1.example/feed"]
    with database.session() as s:  # another worker gets the rest only
        rest = store.claim_feeds(s, T0 + timedelta(minutes=1), "w2", lease, only_due=False)
        assert [f.url for f in rest] == ["https://2.example/feed"]
    with database.session() as s:
        owners = {f.url: (f.lease_owner, f.lease_until) for f in s.scalars(select(Feed))}
    until = T0 + timedelta(minutes=1) + lease
    assert owners["https://0.example/feed"] == ("w1", until)
    assert owners["https://2.example/feed"] == ("w2", until)
    assert owners["https://off.example/feed"] == (None, None)


def test_one_article_to_row_mapping_covers_the_entry_columns() -> None:
    """rows.ARTICLE_COLUMNS is the one mapping of an Article to an entry: every field of
    the Article is an Entry column there, and every bulk column is a column of the model."""
    from dataclasses import fields

    from monitor.rows import ADDED_COLUMNS, ARTICLE_COLUMNS, ENTRY_COLUMNS, article_row

    model = set(Entry.__table__.columns.keys())
    assert {f.name for f in fields(Article)} == set(ARTICLE_COLUMNS)
    assert set(ADDED_COLUMNS + ENTRY_COLUMNS) <= model
    a = article(1, T0)
    assert dict(zip(ARTICLE_COLUMNS, article_row(a), strict=True)) == {
        f.name: getattr(a, f.name) for f in fields(Article)
    }


def test_leases_of_a_dead_process_on_this_host_are_taken_over_at_once(database: Database) -> None:
    """After a crash the next poll polled nothing until the dead process's leases expired
    (five minutes). A lease whose owner is a process of this host that no longer runs is
    reclaimed; a live one's is not."""
    import os
    import socket
    import subprocess
    import sys

    from monitor.leases import dead_on_this_host

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead = f"{socket.gethostname()}:{gone.stdout.strip()}:abc123"
    alive = f"{socket.gethostname()}:{os.getppid()}:def456"
    until = T0 + timedelta(minutes=5)
    with database.session() as s:
        for name, owner in (("a", dead), ("b", alive), ("c", "elsewhere:1:x")):
            s.add(
                Feed(
                    url=f"https://{name}.example/feed",
                    name=name,
                    lease_owner=owner,
                    lease_until=until,
                    next_poll_at=T0,
                )
            )
    with database.session() as s:
        got = store.claim_feeds(s, T0, "me:1:zz", timedelta(minutes=5), True, dead_on_this_host)
    assert [f.url for f in got] == ["https://a.example/feed"]


@pytest.mark.postgres
def test_two_workers_syncing_the_config_on_a_new_database_both_start(pg_url: str) -> None:
    """`docker compose up --scale monitor=2` on a fresh database: both add the config's
    feeds at once; the second waits for the first and skips the rows it added, instead of
    dying on the unique key."""
    import threading

    from monitor.config import FeedConfig

    first, second = Database(pg_url), Database(pg_url)
    first.upgrade()
    feeds = [FeedConfig(url=f"https://{n}.example/feed") for n in "abc"]
    errors: list[BaseException] = []
    with first.session() as s:
        store.sync_feeds(s, feeds, T0)  # not committed yet: the other worker must wait

        def other() -> None:
            try:
                with second.session() as s2:
                    store.sync_feeds(s2, feeds, T0)
            except BaseException as exc:
                errors.append(exc)

        t = threading.Thread(target=other)
        t.start()
        t.join(timeout=1.0)  # it blocks on the first transaction's rows
        assert t.is_alive()
    t.join(timeout=30)
    assert not t.is_alive() and errors == []
    with first.session() as s:
        assert len(store.feeds_in_order(s)) == 3
    first.dispose()
    second.dispose()


def test_an_entry_is_found_by_its_address_without_the_feeds_own_query(database: Database) -> None:
    """`monitor explain URL` with the address as a reader copies it: the stored one carries
    the feed's own tracking query (?ref=rss), which canonicalization keeps."""
    from monitor.normalize import canonical_url

    with database.session() as s:
        feed = Feed(url="https://a.example/feed", name="a")
        s.add(feed)
        s.flush()
        s.add(
            store.new_entry(
                feed.id,
                replace(
                    article(1, T0),
                    url="https://a.example/story_1?ref=rss",
                    canonical_url=canonical_url("https://a.example/story_1?ref=rss"),
                ),
                T0,
            )
        )
    with database.session() as s:
        plain = "https://a.example/story_1"
        found = store.entry_by_url(s, plain, canonical_url(plain))
        assert found is not None and found.url == "https://a.example/story_1?ref=rss"
        other = "https://a.example/story%1"  # LIKE's wildcards are taken literally
        assert store.entry_by_url(s, other, canonical_url(other)) is None
