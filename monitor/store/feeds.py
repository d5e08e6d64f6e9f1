"""Feed rows: made from the config, the CLI and OPML (one way: feed_values), claimed
by pollers under row leases, updated after each poll."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from monitor.leases import claimable
from monitor.models import Feed
from monitor.schedule import DEFAULT_INTERVAL

if TYPE_CHECKING:
    from monitor.config import FeedConfig


def sync_feeds(s: Session, feeds: Sequence[FeedConfig], now: datetime) -> None:
    """Make the database's config-origin feeds match the config file.

    Feeds in the file are added or updated (name, interval, enabled); config feeds no longer
    in the file are disabled, not deleted, so their history stays. Feeds added with
    `monitor feeds add` (origin "cli") are left alone. Rows are read as plain tuples and
    only those that differ are written: every poll runs this over every feed.
    """
    stored = {
        r.url: r
        for r in s.connection().execute(
            select(
                Feed.id,
                Feed.url,
                Feed.name,
                Feed.enabled,
                Feed.interval_seconds,
                Feed.adaptive,
                Feed.origin,
                Feed.last_status,
                Feed.next_poll_at,
            )
        )
    }
    wanted = {f.url for f in feeds}
    added: list[dict[str, Any]] = []
    for cfg in feeds:
        row = stored.get(cfg.url)
        adaptive = cfg.interval is None
        interval = max(1, int((cfg.interval or DEFAULT_INTERVAL).total_seconds()))
        if row is None:
            added.append(feed_values(cfg, "config", now))
            continue
        # A feed the server declared gone (HTTP 410) stays off until its URL changes.
        wanted_row = {
            "name": cfg.name or row.name,
            "adaptive": adaptive,
            "enabled": cfg.enabled and row.last_status != 410,
        }
        if not adaptive and row.interval_seconds != interval:
            wanted_row["interval_seconds"] = interval
            wanted_row["next_poll_at"] = min(
                row.next_poll_at or now, now + timedelta(seconds=interval)
            )
        changes = {k: v for k, v in wanted_row.items() if getattr(row, k) != v}
        if changes:
            s.execute(update(Feed).where(Feed.id == row.id).values(**changes))
    gone = [
        row.id
        for url, row in stored.items()
        if row.origin == "config" and url not in wanted and row.enabled
    ]
    for chunk in _chunks(gone):
        s.execute(update(Feed).where(Feed.id.in_(chunk)).values(enabled=False))
    if added:
        s.execute(insert_new_feeds(s), added)


def insert_new_feeds(s: Session) -> Any:
    """An INSERT of feed rows that skips a URL already present: two workers starting
    together on a new database both add the config's feeds, and the second must not die
    on the unique key (PostgreSQL makes it wait for the first, then skips)."""
    if s.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(Feed).on_conflict_do_nothing(index_elements=[Feed.url])
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(Feed).on_conflict_do_nothing(index_elements=[Feed.url])


def feed_values(cfg: FeedConfig, origin: str, now: datetime) -> dict[str, Any]:
    """The row of a new feed: the one way feed rows are made (config, CLI, OPML)."""
    return {
        "url": cfg.url,
        "name": cfg.name,
        "enabled": cfg.enabled,
        "origin": origin,
        "interval_seconds": max(1, int((cfg.interval or DEFAULT_INTERVAL).total_seconds())),
        "adaptive": cfg.interval is None,
        "next_poll_at": now,
        "created_at": now,
    }


def add_feeds(s: Session, feeds: Sequence[FeedConfig], origin: str, now: datetime) -> list[str]:
    """Add the feeds not already present (by URL); the URLs added."""
    known = set(s.scalars(select(Feed.url).where(Feed.url.in_([f.url for f in feeds]))))
    added = []
    for cfg in feeds:
        if cfg.url not in known:
            s.execute(insert_new_feeds(s), [feed_values(cfg, origin, now)])
            known.add(cfg.url)
            added.append(cfg.url)
    return added


def feeds_in_order(s: Session, enabled_only: bool = False) -> list[Feed]:
    q = select(Feed).order_by(Feed.id)
    if enabled_only:
        q = q.where(Feed.enabled.is_(True))
    return list(s.scalars(q))


# What a poll needs of a claimed feed: plain rows (a thousand feeds, no ORM objects).
CLAIMED = (
    Feed.id,
    Feed.url,
    Feed.permanent_url,
    Feed.etag,
    Feed.last_modified,
    Feed.body_hash,
    Feed.first_polled_at,
)


def claim_feeds(
    s: Session,
    now: datetime,
    owner: str,
    lease: timedelta,
    only_due: bool,
    stale: Callable[[str], bool] = lambda owner: False,
) -> list[Row[Any]]:
    """Lease enabled feeds (all, or those due) to `owner`; rows locked by others are skipped,
    except leases whose owner `stale` says is dead (a crashed process: see leases.py)."""
    q = select(*CLAIMED).where(Feed.enabled.is_(True), claimable(s, Feed, owner, now, stale))
    if only_due:
        q = q.where(or_(Feed.next_poll_at.is_(None), Feed.next_poll_at <= now))
    q = q.order_by(Feed.next_poll_at, Feed.id).with_for_update(skip_locked=True)
    feeds: list[Row[Any]] = list(s.connection().execute(q))
    for chunk in _chunks([f.id for f in feeds]):
        s.execute(
            update(Feed)
            .where(Feed.id.in_(chunk))
            .values(lease_owner=owner, lease_until=now + lease)
        )
    return feeds


def _chunks(ids: list[int], size: int = 1000) -> Iterator[list[int]]:
    """Ids in groups small enough for one IN list (SQLite caps bound parameters)."""
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def feeds_by_id(s: Session, ids: Sequence[int]) -> dict[int, Feed]:
    return {f.id: f for f in s.scalars(select(Feed).where(Feed.id.in_(ids)))}


def schedules(s: Session, ids: Sequence[int]) -> dict[int, Row[Any]]:
    """What recording a poll without news needs of these feeds, as plain rows."""
    rows: list[Row[Any]] = list(
        s.connection().execute(
            select(
                Feed.id,
                Feed.url,
                Feed.permanent_url,
                Feed.next_poll_at,
                Feed.interval_seconds,
                Feed.error_count,
                Feed.error_kind,
            ).where(Feed.id.in_(ids))
        )
    )
    return {r.id: r for r in rows}


def update_feeds(s: Session, values: Sequence[dict[str, Any]]) -> None:
    """One executemany UPDATE: each dict holds a feed's "feed_id" and the same columns."""
    if values:
        s.connection().execute(update(Feed).where(Feed.id == bindparam("feed_id")), values)


def release_feed(feed: Feed) -> None:
    feed.lease_owner = None
    feed.lease_until = None


def clear_feed_leases(s: Session, owner: str) -> None:
    s.execute(
        update(Feed).where(Feed.lease_owner == owner).values(lease_owner=None, lease_until=None)
    )


def feed_health(s: Session) -> tuple[int, int]:
    """(enabled feeds, enabled feeds whose last poll failed)."""
    total = s.scalar(select(func.count()).select_from(Feed).where(Feed.enabled.is_(True)))
    failing = s.scalar(
        select(func.count()).select_from(Feed).where(Feed.enabled.is_(True), Feed.error_count > 0)
    )
    return total or 0, failing or 0


class OwnedByConfig(ValueError):
    """A feed of the config file: paused or removed there (`enabled = false`, or its
    [[feeds]] entry deleted), since every start makes the database match the file."""


def manual_feed(s: Session, feed_id: int) -> Feed | None:
    """A feed added by hand (CLI, desk, OPML), to pause or remove; None if there is no
    such feed; OwnedByConfig for one of the config file's."""
    feed = s.get(Feed, feed_id)
    if feed is not None and feed.origin == "config":
        raise OwnedByConfig(
            f"{feed.url} comes from the config file: set enabled = false or remove it there"
        )
    return feed
