"""Reads and writes of the pipeline's state. The database edge; no decisions live here."""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.orm import Session, selectinload

from monitor.models import PENDING, Alert, Delivery, Development, Entry, Feed, TopicMatch
from monitor.rows import ADDED_COLUMNS, ENTRY_COLUMNS, encode_datetime
from monitor.schedule import DEFAULT_INTERVAL

if TYPE_CHECKING:
    from monitor.config import FeedConfig
    from monitor.match import MatchResult
    from monitor.normalize import Article

# Any constant unique to this application: the key of the PostgreSQL advisory lock that
# serializes clustering, so two workers never open two developments for one story.
CLUSTER_LOCK_KEY = 0x6D6F6E69


def sync_feeds(s: Session, feeds: Sequence[FeedConfig], now: datetime) -> None:
    """Make the database's config-origin feeds match the config file.

    Feeds in the file are added or updated (name, interval, enabled); config feeds no longer
    in the file are disabled, not deleted, so their history stays. Feeds added with
    `monitor feeds add` (origin "cli") are left alone. Rows are read as plain tuples and
    only those that differ are written: every poll runs this over every feed.
    """
    stored = {r.url: r for r in s.connection().execute(select(
        Feed.id, Feed.url, Feed.name, Feed.enabled, Feed.interval_seconds, Feed.adaptive,
        Feed.origin, Feed.last_status, Feed.next_poll_at))}
    wanted = {f.url for f in feeds}
    added: list[dict[str, Any]] = []
    for cfg in feeds:
        row = stored.get(cfg.url)
        adaptive = cfg.interval is None
        interval = max(1, int((cfg.interval or DEFAULT_INTERVAL).total_seconds()))
        if row is None:
            added.append({"url": cfg.url, "name": cfg.name, "enabled": cfg.enabled,
                          "interval_seconds": interval, "adaptive": adaptive,
                          "origin": "config", "next_poll_at": now, "created_at": now})
            continue
        # A feed the server declared gone (HTTP 410) stays off until its URL changes.
        wanted_row = {"name": cfg.name or row.name, "adaptive": adaptive,
                      "enabled": cfg.enabled and row.last_status != 410}
        if not adaptive and row.interval_seconds != interval:
            wanted_row["interval_seconds"] = interval
            wanted_row["next_poll_at"] = min(row.next_poll_at or now,
                                             now + timedelta(seconds=interval))
        changes = {k: v for k, v in wanted_row.items() if getattr(row, k) != v}
        if changes:
            s.execute(update(Feed).where(Feed.id == row.id).values(**changes))
    gone = [row.id for url, row in stored.items()
            if row.origin == "config" and url not in wanted and row.enabled]
    for chunk in _chunks(gone):
        s.execute(update(Feed).where(Feed.id.in_(chunk)).values(enabled=False))
    if added:
        s.execute(insert(Feed), added)


# What a poll needs of a claimed feed: plain rows (a thousand feeds, no ORM objects).
CLAIMED = (Feed.id, Feed.url, Feed.permanent_url, Feed.etag, Feed.last_modified,
           Feed.body_hash, Feed.first_polled_at)


def claim_feeds(s: Session, now: datetime, owner: str, lease: timedelta,
                only_due: bool) -> list[Row[Any]]:
    """Lease enabled feeds (all, or those due) to `owner`; rows locked by others are skipped."""
    q = select(*CLAIMED).where(Feed.enabled.is_(True))
    q = q.where(or_(Feed.lease_until.is_(None), Feed.lease_until < now, Feed.lease_owner == owner))
    if only_due:
        q = q.where(or_(Feed.next_poll_at.is_(None), Feed.next_poll_at <= now))
    q = q.order_by(Feed.next_poll_at, Feed.id).with_for_update(skip_locked=True)
    feeds: list[Row[Any]] = list(s.connection().execute(q))
    for chunk in _chunks([f.id for f in feeds]):
        s.execute(update(Feed).where(Feed.id.in_(chunk))
                  .values(lease_owner=owner, lease_until=now + lease))
    return feeds


def _chunks(ids: list[int], size: int = 1000) -> Iterator[list[int]]:
    """Ids in groups small enough for one IN list (SQLite caps bound parameters)."""
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def feeds_by_id(s: Session, ids: Sequence[int]) -> dict[int, Feed]:
    return {f.id: f for f in s.scalars(select(Feed).where(Feed.id.in_(ids)))}


def schedules(s: Session, ids: Sequence[int]) -> dict[int, Row[Any]]:
    """What recording a poll without news needs of these feeds, as plain rows."""
    rows: list[Row[Any]] = list(s.connection().execute(select(
        Feed.id, Feed.url, Feed.permanent_url, Feed.next_poll_at, Feed.interval_seconds,
        Feed.error_count, Feed.error_kind).where(Feed.id.in_(ids))))
    return {r.id: r for r in rows}


def update_feeds(s: Session, values: Sequence[dict[str, Any]]) -> None:
    """One executemany UPDATE: each dict holds a feed's "feed_id" and the same columns."""
    if values:
        s.connection().execute(update(Feed).where(Feed.id == bindparam("feed_id")), values)


def release_feed(feed: Feed) -> None:
    feed.lease_owner = None
    feed.lease_until = None


def lock_clustering(s: Session) -> None:
    """Serialize clustering across workers (PostgreSQL); SQLite has one writer anyway."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLUSTER_LOCK_KEY})


def known_hashes(s: Session, feed_id: int, guids: Sequence[str]) -> dict[str, str]:
    """guid → content hash of a feed's stored entries with the given guids."""
    q = select(Entry.guid, Entry.content_hash).where(Entry.feed_id == feed_id,
                                                     Entry.guid.in_(guids))
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


def insert_rows(s: Session, feed_id: int, rows: Sequence[tuple[Any, ...]],
                now: datetime) -> list[int]:
    """Insert a feed's new entries from rows encoded by `rows.QuietRows` with one
    `executemany` of the driver, bypassing SQLAlchemy's per-row work (which cost several
    times the insert itself); their ids, in the order given."""
    if not rows:
        return []
    conn = s.connection()
    dialect = conn.dialect.name
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    columns = ADDED_COLUMNS + ENTRY_COLUMNS
    sql = (f"INSERT INTO entries ({', '.join(columns)}) "
           f"VALUES ({', '.join([mark] * len(columns))})")
    at = encode_datetime(dialect, now)
    before = conn.scalar(select(func.max(Entry.id))) or 0
    conn.exec_driver_sql(sql, [(feed_id, at, at, *row) for row in rows])
    # One feed's entries are written by one process at a time (it holds the feed's lease),
    # and ids grow in insertion order: those above `before` are these, in order.
    ids = list(conn.scalars(select(Entry.id).where(Entry.feed_id == feed_id, Entry.id > before)
                            .order_by(Entry.id)))
    if len(ids) != len(rows):
        raise RuntimeError(f"inserted {len(rows)} entries of feed {feed_id}, found {len(ids)}")
    return ids


def article_values(a: Article, now: datetime) -> dict[str, Any]:
    """The columns of an entry that come from its article."""
    return {"url": a.url, "canonical_url": a.canonical_url, "title": a.title,
            "summary_html": a.summary_html, "text": a.text, "language": a.language,
            "author": a.author, "content_hash": a.content_hash,
            "published_at": a.published_at, "updated_at": a.updated_at,
            "date_estimated": a.date_estimated, "last_seen_at": now}


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


def recent_entries(s: Session, since: datetime, after_id: int,
                   background: int) -> Iterator[Row[Any]]:
    """What clustering needs of the entries published since `since` with id above
    `after_id`, by id (no titles or texts): every development member, and of the rest
    only the latest `background`."""
    columns = (Entry.id, Entry.development_id, Entry.canonical_url, Entry.content_hash,
               Entry.published_at, Entry.cluster_features, Entry.language)
    recent = (Entry.published_at >= since, Entry.id > after_id)
    # Two queries, each reading only the rows it returns: members through the index on
    # development_id (which SQLite's planner takes for "IN developments", not for "IS NOT
    # NULL", the same rows by the foreign key), the rest newest first. One query with an
    # OR read every recent row of the table. On the connection, not through the ORM's row
    # loading (a third of the cost here).
    conn = s.connection()
    members = conn.execute(select(*columns).where(
        *recent, Entry.development_id.in_(select(Development.id))).order_by(Entry.id))
    latest = list(conn.execute(select(*columns).where(*recent, Entry.development_id.is_(None))
                               .order_by(Entry.id.desc()).limit(background)))
    latest.reverse()
    yield from heapq.merge(members, latest, key=lambda row: row.id)


def has_pending(s: Session) -> bool:
    """Whether any entry waits to be placed (read through the partial index)."""
    return s.scalar(select(Entry.id).where(Entry.join_reason == PENDING).limit(1)) is not None


def pending_entries(s: Session) -> list[Entry]:
    """Entries waiting to be placed in a development, in the order they are placed:
    oldest first, then by URL and guid, so the order is the same whatever the order of
    storing (ids follow arrival)."""
    q = (select(Entry).where(Entry.join_reason == PENDING)
         .options(selectinload(Entry.matches)))
    rows = list(s.scalars(q))
    rows.sort(key=lambda e: (e.published_at, e.canonical_url or "", e.guid, e.id))
    return rows


def developments_since(s: Session, since: datetime) -> set[int]:
    q = select(Development.id).where(Development.first_seen_at >= since)
    return set(s.scalars(q))


def add_alert(s: Session, dev: Development, public_id: str,
              routes: Sequence[tuple[str, str, datetime]], now: datetime) -> Alert:
    """The outbox rows (channel, status, first attempt), written in the caller's
    transaction with the development."""
    alert = Alert(public_id=public_id, development_id=dev.id, created_at=now, kind="development")
    for name, status, at in routes:
        alert.deliveries.append(Delivery(channel=name, status=status, next_attempt_at=at,
                                         created_at=now))
    s.add(alert)
    return alert


def instant_sent_since(s: Session, channel: str, since: datetime) -> int:
    """Deliveries a channel got outside digests since `since` (for its rate limit)."""
    q = select(func.count()).select_from(Delivery).where(
        Delivery.channel == channel, Delivery.created_at >= since,
        Delivery.status.in_(("pending", "delivered", "dead")), Delivery.digest_alert_id.is_(None),
        Delivery.alert.has(Alert.kind == "development"))
    return int(s.scalar(q) or 0)


def last_digest_fire(s: Session, channel: str) -> datetime | None:
    keys = s.scalars(select(Alert.digest_key).where(Alert.digest_key.like(f"{channel}@%"))
                     .order_by(Alert.id.desc()).limit(1))
    key = next(iter(keys), None)
    return datetime.fromisoformat(key.split("@", 1)[1]) if key else None


def waiting(s: Session, channel: str, until: datetime | None = None) -> list[Delivery]:
    q = select(Delivery).where(Delivery.channel == channel, Delivery.status == "waiting")
    if until is not None:
        q = q.where(Delivery.created_at <= until)
    return list(s.scalars(q.order_by(Delivery.created_at, Delivery.id)))


def claim_deliveries(s: Session, now: datetime, owner: str, lease: timedelta,
                     reclaim_foreign: bool, limit: int = 100) -> list[Delivery]:
    """Lease due deliveries. With `reclaim_foreign` (one worker only, as on SQLite) a lease
    held by another owner is a dead process's and is taken over at once."""
    q = select(Delivery).where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
    if not reclaim_foreign:
        q = q.where(or_(Delivery.lease_until.is_(None), Delivery.lease_until < now,
                        Delivery.lease_owner == owner))
    q = q.order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
    rows = list(s.scalars(q.with_for_update(skip_locked=True)))
    for d in rows:
        d.lease_owner = owner
        d.lease_until = now + lease
    return rows


def count_due(s: Session, now: datetime) -> int:
    q = select(func.count()).select_from(Delivery).where(
        Delivery.status == "pending", Delivery.next_attempt_at <= now)
    return int(s.scalar(q) or 0)


def development_entries(s: Session, dev_id: int) -> list[Entry]:
    return list(s.scalars(select(Entry).where(Entry.development_id == dev_id)
                          .order_by(Entry.first_seen_at, Entry.id)))


def cleanup(s: Session, before: datetime) -> int:
    """Delete entries last seen before `before`, then developments left without entries.
    Alerts and their deliveries stay as the record of what was sent."""
    old = Entry.last_seen_at < before
    gone = s.scalar(select(func.count()).select_from(Entry).where(old)) or 0
    s.execute(delete(Entry).where(old))
    has_entries = select(Entry.id).where(Entry.development_id == Development.id).exists()
    s.execute(delete(Development).where(Development.last_seen_at < before, ~has_entries))
    return int(gone)


def clear_feed_leases(s: Session, owner: str) -> None:
    s.execute(update(Feed).where(Feed.lease_owner == owner)
              .values(lease_owner=None, lease_until=None))
