"""Full-text search over stored entries (store/search.py), on SQLite FTS5 and PostgreSQL:
what is stored becomes searchable once the index catches up; words match as prefixes in
either language; revised and deleted entries are kept right; no query text is syntax."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update

from monitor.db import Database
from monitor.models import Entry, Feed
from monitor.store import search

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)

STORIES = [
    ("Putin and Bennett meet in Sochi", "The leaders discussed Syria and Iran for five hours."),
    ("Israeli strike hits Latakia port", "Containers burned near the Russian base."),
    ("Путин встретился с премьером Израиля", "Беседа в Сочи длилась пять часов."),
    ("Local football results", "The derby ended in a draw."),
]


def store(db: Database, stories: list[tuple[str, str]]) -> list[int]:
    with db.session() as s:
        feed = s.query(Feed).first() or Feed(url="https://a.example/feed", name="a")
        s.add(feed)
        s.flush()
        rows = [
            Entry(
                feed_id=feed.id,
                guid=f"g{title}",
                url=f"https://a.example/{n}",
                title=title,
                text=body,
                content_hash=f"h{title}",
                published_at=T0 + timedelta(minutes=n),
            )
            for n, (title, body) in enumerate(stories)
        ]
        s.add_all(rows)
        s.flush()
        return [e.id for e in rows]


def found(db: Database, query: str) -> list[str]:
    with db.sessions() as s:
        return [e.title for e in search.search(s, query).entries]


def catch_up(db: Database, limit: int = 5000) -> int:
    with db.session() as s:
        return search.catch_up(s, limit)


def test_stored_entries_are_found_once_the_index_catches_up(database: Database) -> None:
    store(database, STORIES)
    assert found(database, "Sochi") == []  # stored, not indexed yet
    with database.sessions() as s:
        assert search.backlog(s) == 4
    assert catch_up(database, limit=3) == 3  # in chunks
    assert catch_up(database) == 1
    assert catch_up(database) == 0
    with database.sessions() as s:
        assert search.backlog(s) == 0
        assert not search.behind(s)  # what an idle indexer reads, writing nothing
    assert found(database, "sochi") == ["Putin and Bennett meet in Sochi"]  # any case
    assert found(database, "Сочи") == ["Путин встретился с премьером Израиля"]
    assert found(database, "Израил") == ["Путин встретился с премьером Израиля"]  # prefixes
    assert found(database, "contain russian") == ["Israeli strike hits Latakia port"]  # all words
    assert found(database, "putin") == ["Putin and Bennett meet in Sochi"]
    assert found(database, "hours") == ["Putin and Bennett meet in Sochi"]  # the text too
    assert found(database, "derby tennis") == []
    store(database, [("Putin calls Herzog", "A second call in a week.")])
    catch_up(database)
    assert found(database, "putin") == ["Putin calls Herzog", "Putin and Bennett meet in Sochi"]
    with database.sessions() as s:  # pages, newest first
        page2 = search.search(s, "putin", page=2, size=1)
        assert [e.title for e in page2.entries] == ["Putin and Bennett meet in Sochi"]
        assert page2.total == 2


def test_revised_and_deleted_entries_are_kept_right(database: Database) -> None:
    ids = store(database, STORIES)
    catch_up(database)
    with database.session() as s:
        s.execute(
            update(Entry)
            .where(Entry.id == ids[1])
            .values(title="Israeli strike hits Tartus port", text="Fires at the docks.")
        )
        s.execute(delete(Entry).where(Entry.id == ids[0]))
    assert found(database, "latakia") == []  # its old words are forgotten
    assert found(database, "tartus docks") == ["Israeli strike hits Tartus port"]
    assert found(database, "sochi") == []  # deleted
    assert found(database, "Сочи") == ["Путин встретился с премьером Израиля"]
    # a revision of an entry not indexed yet is indexed as it is when the index gets there
    (late,) = store(database, [("Draft headline", "First words.")])
    with database.session() as s:
        s.execute(update(Entry).where(Entry.id == late).values(title="Final headline"))
    catch_up(database)
    assert found(database, "final") == ["Final headline"] and found(database, "draft") == []


@pytest.mark.parametrize(
    "query",
    ['"', "*", "NEAR(a b)", "a AND OR NOT", "(", "'; DROP TABLE entries; --", "col:val", "\\", "^"],
)
def test_no_query_text_is_syntax(database: Database, query: str) -> None:
    store(database, [*STORIES, (f"About {query} here", "text")])
    catch_up(database)
    with database.sessions() as s:
        result = search.search(s, query)  # no error, whatever was typed
    assert result.total <= 1
    assert found(database, "") == []


def test_a_nudged_indexer_indexes_at_once_whatever_its_pause(database: Database) -> None:
    """The service nudges the desk's indexer after a poll that stored entries, so that
    between polls it can look seldom (NUDGED_PAUSE, not PAUSE: an idle service's CPU)."""
    import threading

    from monitor.web.serve import Indexer

    indexer = Indexer(database)
    indexer.pause = 3600.0  # never, within this test, but for a nudge
    passes = threading.Semaphore(0)
    real = search.catch_up

    def counted(s: object, limit: int) -> int:
        done = real(s, limit)  # type: ignore[arg-type]
        passes.release()
        return done

    search.catch_up = counted  # type: ignore[assignment]
    try:
        indexer.start()
        assert passes.acquire(timeout=30)  # the first pass, as it starts
        store(database, STORIES[:1])
        indexer.nudge()
        assert passes.acquire(timeout=30)
        indexer.stop()  # the pass's transaction has committed once the thread ends
        assert found(database, "sochi") == ["Putin and Bennett meet in Sochi"]
        assert indexer.pause == Indexer.NUDGED_PAUSE
    finally:
        indexer.stop()
        search.catch_up = real  # type: ignore[assignment]
    assert not indexer.thread.is_alive()
