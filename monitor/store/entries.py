"""Entry rows: what a feed's documents brought, stored in bulk or one by one, with their
topic matches; read back by the clustering index and by `settle`."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, delete, false, func, select
from sqlalchemy.orm import Session, selectinload

from monitor.models import PENDING, Development, Entry, TopicMatch
from monitor.rows import (
    ADDED_COLUMNS,
    ARTICLE_COLUMNS,
    DATETIME_POSITIONS,
    ENTRY_COLUMNS,
    article_row,
    encode_datetime,
)

if TYPE_CHECKING:
    from monitor.match import MatchResult
    from monitor.normalize import Article


def known_hashes(s: Session, feed_id: int, guids: Sequence[str]) -> dict[str, str]:
    """guid → content hash of a feed's stored entries with the given guids."""
    q = select(Entry.guid, Entry.content_hash).where(
        Entry.feed_id == feed_id, Entry.guid.in_(guids)
    )
    # On the connection: no autoflush of pending feed changes, which a batch of feeds
    # flushes once (they never bear on entries).
    return {guid: h for guid, h in s.connection().execute(q)}


def entries_by_guid(s: Session, feed_id: int, guids: Sequence[str]) -> dict[str, Entry]:
    if not guids:
        return {}
    rows = s.scalars(select(Entry).where(Entry.feed_id == feed_id, Entry.guid.in_(guids)))
    return {e.guid: e for e in rows}


def new_entry(feed_id: int, a: Article, now: datetime) -> Entry:
    e = Entry(feed_id=feed_id, guid=a.guid, first_seen_at=now, revision=1, matches=[])
    apply_article(e, a, now)
    return e


def insert_rows(
    s: Session, feed_id: int, rows: Sequence[tuple[Any, ...]], now: datetime
) -> list[int]:
    """Insert a feed's new entries from rows laid out by `rows.QuietRows` with one
    `executemany` of the driver, bypassing SQLAlchemy's per-row work (which cost several
    times the insert itself); their ids, in the order given. Datetimes are encoded here,
    as the Entry model's column type would for this database."""
    if not rows:
        return []
    conn = s.connection()
    dialect = conn.dialect.name
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ADDED_COLUMNS + ENTRY_COLUMNS
    sql = f"INSERT INTO entries ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    at = encode_datetime(dialect, now)
    before = conn.scalar(select(func.max(Entry.id))) or 0
    if dialect == "sqlite":  # elsewhere the driver adapts aware datetimes itself
        rows = [_encoded(dialect, row) for row in rows]
    conn.exec_driver_sql(sql, [(feed_id, at, at, *row) for row in rows])
    # One feed's entries are written by one process at a time (it holds the feed's lease),
    # and ids grow in insertion order: those above `before` are these, in order.
    ids = list(
        conn.scalars(
            select(Entry.id).where(Entry.feed_id == feed_id, Entry.id > before).order_by(Entry.id)
        )
    )
    if len(ids) != len(rows):
        raise RuntimeError(f"inserted {len(rows)} entries of feed {feed_id}, found {len(ids)}")
    return ids


def _encoded(dialect: str, row: tuple[Any, ...]) -> tuple[Any, ...]:
    out = list(row)
    for i in DATETIME_POSITIONS:
        out[i] = encode_datetime(dialect, out[i])
    return tuple(out)


def article_values(a: Article, now: datetime) -> dict[str, Any]:
    """The columns of an entry that come from its article (rows.article_row, by name)."""
    return {**dict(zip(ARTICLE_COLUMNS, article_row(a), strict=True)), "last_seen_at": now}


def apply_article(e: Entry, a: Article, now: datetime) -> None:
    for column, value in article_values(a, now).items():
        setattr(e, column, value)


def save_matches(row: Entry, result: MatchResult) -> None:
    """An entry's topic scores, replacing what it had."""
    row.score = result.best
    row.relevant = result.relevant
    current = {m.topic: m for m in row.matches}
    for topic, ts in result.scores.items():
        m = current.pop(topic, None)
        if m is None:
            row.matches.append(TopicMatch(topic=topic, score=ts.score, evidence=ts.evidence))
        else:
            m.score, m.evidence = ts.score, ts.evidence
    for m in current.values():
        row.matches.remove(m)


def last_entry_id(s: Session) -> int:
    """The highest entry id stored (0 for none)."""
    return s.scalar(select(func.max(Entry.id))) or 0


def recent_entries(
    s: Session, since: datetime, after_id: int, upto: int, background: int
) -> Iterator[Row[Any]]:
    """What clustering needs of the entries published since `since` with id above
    `after_id` and at most `upto`, by id (no titles or texts): every development member,
    and of the rest only the latest `background`. Entries are inserted under the
    clustering lock, so those committed are always the ids up to some bound; `upto`
    read first makes the two queries below read the same entries even without the lock
    (on PostgreSQL each statement sees what was committed when it started)."""
    columns = (
        Entry.id,
        Entry.development_id,
        Entry.canonical_url,
        Entry.content_hash,
        Entry.published_at,
        Entry.cluster_features,
        Entry.language,
    )
    recent = (Entry.published_at >= since, Entry.id > after_id, Entry.id <= upto)
    # Two queries, each reading only the rows it returns: members through the index on
    # development_id (which SQLite's planner takes for "IN developments", not for "IS NOT
    # NULL", the same rows by the foreign key), the rest newest first. One query with an
    # OR read every recent row of the table. On the connection, not through the ORM's row
    # loading (a third of the cost here).
    conn = s.connection()
    members = conn.execute(
        select(*columns)
        .where(*recent, Entry.development_id.in_(select(Development.id)))
        .order_by(Entry.id)
    )
    latest = list(
        conn.execute(
            select(*columns)
            .where(*recent, Entry.development_id.is_(None))
            .order_by(Entry.id.desc())
            .limit(background)
        )
    )
    latest.reverse()
    yield from heapq.merge(members, latest, key=lambda row: row.id)


def has_pending(s: Session) -> bool:
    """Whether any entry waits to be placed (read through the partial index)."""
    return s.scalar(select(Entry.id).where(Entry.join_reason == PENDING).limit(1)) is not None


def pending_entries(s: Session) -> list[Entry]:
    """Entries waiting to be placed in a development, in the order they are placed:
    oldest first, then by URL and guid, so the order is the same whatever the order of
    storing (ids follow arrival)."""
    q = select(Entry).where(Entry.join_reason == PENDING).options(selectinload(Entry.matches))
    rows = list(s.scalars(q))
    rows.sort(key=lambda e: (e.published_at, e.canonical_url or "", e.guid, e.id))
    return rows


def entry_by_url(s: Session, url: str, canonical: str) -> Entry | None:
    """The entry stored under this address; failing that, the latest one at the same
    address with a query the user left out (a feed's own tracking parameters, such as
    ?ref=rss, which canonicalization does not know to drop)."""
    found = s.scalar(
        select(Entry)
        .where((Entry.canonical_url == canonical) | (Entry.url == url))
        .order_by(Entry.id)
    )
    if found is not None or "?" in canonical:
        return found
    pattern = canonical.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "?%"
    return s.scalar(
        select(Entry)
        .where(Entry.canonical_url.like(pattern, escape="\\"))
        .order_by(Entry.id.desc())
    )


def same_article(s: Session, entry: Entry) -> Entry | None:
    """The first published other entry in a development with this entry's address or text,
    however long ago it was published: the same article (a copy with tracking
    parameters, or a feed's re-post) belongs to that article's development even when it
    is older than the clustering index holds."""
    same = (Entry.content_hash == entry.content_hash) | (
        Entry.canonical_url == entry.canonical_url if entry.canonical_url else false()
    )
    return s.scalar(
        select(Entry)
        .where(same, Entry.id != entry.id, Entry.development_id.is_not(None))
        # the first published, not the first stored: ids follow the order feeds answered
        .order_by(Entry.published_at, Entry.canonical_url, Entry.id)
        .limit(1)
    )


def clustered_near(s: Session, entry: Entry, window: timedelta, limit: int = 2000) -> list[Entry]:
    """Entries in developments published within `window` of `entry`."""
    return list(
        s.scalars(
            select(Entry)
            .where(
                Entry.id != entry.id,
                Entry.development_id.is_not(None),
                Entry.published_at >= entry.published_at - window,
                Entry.published_at <= entry.published_at + window,
            )
            .limit(limit)
        )
    )


def clustered_between(
    s: Session, start: datetime, end: datetime
) -> list[tuple[int, datetime, int | None]]:
    """(id, published_at, development) of the entries in developments published between
    `start` and `end`: the crowd a report was placed in (cluster.crowd_of)."""
    rows = s.execute(
        select(Entry.id, Entry.published_at, Entry.development_id).where(
            Entry.development_id.is_not(None),
            Entry.published_at >= start,
            Entry.published_at <= end,
        )
    )
    return [(i, t, d) for i, t, d in rows]


def cleanup(s: Session, before: datetime) -> int:
    """Delete entries last seen before `before`, then developments left without entries.
    Alerts and their deliveries stay as the record of what was sent."""
    old = Entry.last_seen_at < before
    gone = s.scalar(select(func.count()).select_from(Entry).where(old)) or 0
    s.execute(delete(Entry).where(old))
    has_entries = select(Entry.id).where(Entry.development_id == Development.id).exists()
    s.execute(delete(Development).where(Development.last_seen_at < before, ~has_entries))
    return int(gone)
