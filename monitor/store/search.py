"""Full-text search over stored entries: SQLite FTS5 or PostgreSQL tsvector (migration
0009), filled behind the writers.

Why behind: indexing every entry as it is stored would make a cold poll of a thousand
feeds a third slower on SQLite (FTS5 costs ~65 µs an entry, the insert itself ~1), and
a one-shot poll is meant to cost no more than fetching and parsing. So writers store
entries as before, and `catch_up` indexes what was stored since it last ran, in id order,
in chunks: the desk runs it in the background and before each search. Revised and
deleted entries are kept right by the migration's triggers.

A query is words; each matches as a prefix ("Израил" finds Израиля, Израилем), all must
be present, in any field; results come newest first. No query syntax reaches the engine:
every word is quoted, so a feed's or a reader's `"`, `*`, `NEAR` or `:` is only text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, select, text
from sqlalchemy.orm import Session, selectinload

from monitor.models import Entry, SearchState

# Ids below the newest indexed one that PostgreSQL may still see committed late (ids come
# from a sequence, so an open transaction's entries can commit after later ones).
LATE_COMMITS = 50_000
MAX_WORDS = 8
_WORD = re.compile(r"\w+", re.UNICODE)


def words(query: str) -> list[str]:
    """The words of a query, lower case, at most MAX_WORDS."""
    return [w.lower() for w in _WORD.findall(query)][:MAX_WORDS]


def _sqlite(s: Session) -> bool:
    return s.get_bind().dialect.name == "sqlite"


def behind(s: Session) -> bool:
    """Whether entries were stored beyond the index's mark: a read, so an idle service's
    indexer writes nothing (on PostgreSQL late commits below the mark are caught at the
    next entry stored)."""
    newest = s.scalar(text("SELECT max(id) FROM entries")) or 0
    upto = s.scalar(text("SELECT indexed_upto FROM search_state WHERE id = 1")) or 0
    return int(newest) > int(upto)


def catch_up(s: Session, limit: int = 5000) -> int:
    """Index up to `limit` entries stored since the index last caught up; how many."""
    if not behind(s):
        return 0
    if _sqlite(s):
        # This first write takes SQLite's write lock: another indexer waits here, then
        # reads the mark this one leaves, so no entry is indexed twice.
        s.execute(text("UPDATE search_state SET indexed_upto = indexed_upto WHERE id = 1"))
        upto = s.scalar(text("SELECT indexed_upto FROM search_state WHERE id = 1")) or 0
        last = s.scalar(
            text(
                "SELECT max(id) FROM (SELECT id FROM entries WHERE id > :upto "
                "ORDER BY id LIMIT :limit)"
            ),
            {"upto": upto, "limit": limit},
        )
        if last is None:
            return 0
        inserted = s.execute(
            text(
                "INSERT INTO entries_fts(rowid, title, text) SELECT id, title, text "
                "FROM entries WHERE id > :upto AND id <= :last"
            ),
            {"upto": upto, "last": last},
        )
        done = cast("CursorResult[Any]", inserted).rowcount
    else:
        upto = s.scalar(text("SELECT indexed_upto FROM search_state WHERE id = 1 FOR UPDATE")) or 0
        # Entries not indexed yet, from a little below the mark (late commits) up.
        last, done = s.execute(
            text(
                "WITH todo AS (SELECT e.id FROM entries e LEFT JOIN entry_search x "
                "ON x.entry_id = e.id WHERE e.id > :floor AND x.entry_id IS NULL "
                "ORDER BY e.id LIMIT :limit), "
                "done AS (INSERT INTO entry_search (entry_id, document) "
                "SELECT e.id, to_tsvector('simple', coalesce(e.title, '') || ' ' || "
                "coalesce(e.text, '')) FROM entries e JOIN todo ON todo.id = e.id "
                "ON CONFLICT DO NOTHING RETURNING entry_id) "
                "SELECT max(entry_id), count(*) FROM done"
            ),
            {"floor": max(0, upto - LATE_COMMITS), "limit": limit},
        ).one()
        if last is None:
            return 0
    if last > upto:
        s.execute(text("UPDATE search_state SET indexed_upto = :last WHERE id = 1"), {"last": last})
    return int(done or 0)


def backlog(s: Session) -> int:
    """Entries stored beyond the index's mark: not searchable yet."""
    upto = s.scalar(select(SearchState.indexed_upto).where(SearchState.id == 1)) or 0
    return int(s.scalar(select(func.count()).select_from(Entry).where(Entry.id > upto)) or 0)


@dataclass(frozen=True)
class Found:
    entries: list[Entry]
    total: int  # matches in all, at most COUNT_CAP
    capped: bool  # there are more than COUNT_CAP


COUNT_CAP = 10_000


def search(s: Session, query: str, page: int = 1, size: int = 50) -> Found:
    """Entries with every word of `query` (as prefixes), newest stored first."""
    ws = words(query)
    if not ws:
        return Found([], 0, False)
    offset = (page - 1) * size
    if _sqlite(s):
        match = " ".join('"' + w.replace('"', "") + '"*' for w in ws)
        ids = list(
            s.scalars(
                text(
                    "SELECT rowid FROM entries_fts WHERE entries_fts MATCH :q "
                    "ORDER BY rowid DESC LIMIT :n OFFSET :o"
                ),
                {"q": match, "n": size, "o": offset},
            )
        )
        total = s.scalar(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM entries_fts WHERE entries_fts MATCH :q "
                "LIMIT :cap)"
            ),
            {"q": match, "cap": COUNT_CAP + 1},
        )
    else:
        tsquery = " & ".join(f"{w}:*" for w in ws)  # \w+ only: nothing else reaches it
        ids = list(
            s.scalars(
                text(
                    "SELECT entry_id FROM entry_search WHERE document @@ to_tsquery('simple', :q) "
                    "ORDER BY entry_id DESC LIMIT :n OFFSET :o"
                ),
                {"q": tsquery, "n": size, "o": offset},
            )
        )
        total = s.scalar(
            text(
                "SELECT count(*) FROM (SELECT 1 FROM entry_search WHERE document @@ "
                "to_tsquery('simple', :q) LIMIT :cap) AS matches"
            ),
            {"q": tsquery, "cap": COUNT_CAP + 1},
        )
    load = select(Entry).where(Entry.id.in_(ids)).options(selectinload(Entry.feed))
    rows = {e.id: e for e in s.scalars(load)} if ids else {}
    n = int(total or 0)
    return Found([rows[i] for i in ids if i in rows], min(n, COUNT_CAP), n > COUNT_CAP)
