"""One feed's answer, handled top to bottom, inside the caller's transaction:

1. cadence: what the HTTP answer means (gone, failed, moved, not modified, unchanged);
2. parse and prepare the document (unless a worker process already did);
3. save its entries and their topic matches;
4. decide developments (developments.py: revisions stay in theirs, new on-topic entries
   wait for the end of the poll);
5. announce (a revision may announce its development; the rest at `settle`);
6. update the feed row: validators, next poll (decide.py), health.

The poller (poller.py) owns claiming, concurrency and transactions; this module owns what
one feed's answer means.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from monitor import metrics, store
from monitor.cluster import features, features_to_json
from monitor.decide import FeedUpdate, FeedView, feed_failed, feed_succeeded, longest
from monitor.feedback import Lessons
from monitor.models import Entry, Feed
from monitor.schedule import parse_retry_after
from monitor.stats import PollStats
from monitor.websub import discover

if TYPE_CHECKING:
    from monitor.cluster import Features
    from monitor.developments import Developments
    from monitor.fetch import FetchResult
    from monitor.match import Matcher, MatchResult
    from monitor.outbox import Outbox
    from monitor.prepare import Memo, Prepared

log = logging.getLogger("monitor.refresh")


@dataclass
class Context:
    """What handling a feed's answer needs from the worker."""

    matcher: Callable[[], Matcher]
    developments: Developments
    outbox: Outbox
    failure_alert: timedelta | None = None
    # Readers' feedback as the matcher's lessons, read at the start of each poll.
    lessons: Callable[[], Lessons] = Lessons
    # While a feed's hub pushes it, it is polled this seldom (None: WebSub is off).
    websub_poll: timedelta | None = None
    # What the storing thread read of recent documents (prepare.Memo), made on first use.
    memo: Callable[[], Memo] | None = None


def view(feed: Feed) -> FeedView:
    return FeedView(
        feed.url,
        timedelta(seconds=feed.interval_seconds),
        feed.error_count,
        feed.next_poll_at,
        feed.last_success_at,
        feed.created_at,
        feed.health_alerted_at,
        feed.adaptive,
        feed.error_kind,
    )


def refresh_feed(
    ctx: Context,
    s: Session,
    feed: Feed,
    result: FetchResult,
    prepared: Prepared | None,
    now: datetime,
) -> PollStats:
    """Everything that follows one fetch of `feed`; `prepared` is the body already parsed
    and matched by a worker process, else it is done here."""
    stats = PollStats()
    before = view(feed)
    first_sight = feed.first_polled_at is None
    feed.last_polled_at = now
    feed.last_status = result.status
    store.release_feed(feed)
    metrics.POLLS.labels(
        "error" if result.error else "not_modified" if result.not_modified else "ok"
    ).inc()

    # 1. cadence: what the answer says
    if result.status == 410:
        fail(
            ctx, s, feed, "gone (HTTP 410): the feed is disabled", "gone", now, stats, disable=True
        )
        return stats
    if result.error is not None:
        retry_after = (
            parse_retry_after(result.retry_after, now) if result.status in (429, 503) else None
        )
        fail(ctx, s, feed, result.error, result.error_kind or "network", now, stats, retry_after)
        return stats
    if result.permanent_url and result.permanent_url != (feed.permanent_url or feed.url):
        # Polled at the new address from now on; `url` stays as configured, so the
        # config file and the database keep agreeing on which feed this is.
        log.info("feed %s moved permanently to %s", feed.url, result.permanent_url)
        feed.permanent_url = result.permanent_url
    hint = timedelta(seconds=result.max_age) if result.max_age is not None else None
    feed.etag, feed.last_modified = result.etag, result.last_modified
    if result.not_modified or (result.body_hash and result.body_hash == feed.body_hash):
        if feed.error_kind == "parse":  # the same document that could not be read
            fail(ctx, s, feed, feed.last_error or "not a feed", "parse", now, stats)
        elif result.not_modified:
            stats.not_modified += 1
        else:
            stats.unchanged += 1
        if not stats.errors:
            apply(feed, feed_succeeded(before, now, hint))
        return stats

    # 2. parse and prepare
    # A worker split the document into quiet rows and articles assuming what was stored
    # (`against`); in this transaction, that is checked.
    if (
        prepared is not None
        and prepared.error is None
        and not first_sight
        and prepared.against != store.known_hashes(s, feed.id, list(prepared.hashes))
    ):
        prepared = None
    if prepared is None:
        prepared = prepare_here(ctx, s, result, feed, now, first_sight)
    feed.body_hash = result.body_hash
    if prepared.error is not None:
        # A failure for back-off and health. The validators and the body hash are kept:
        # while the server sends the same document, it fails again without being read.
        fail(ctx, s, feed, prepared.error, prepared.error_kind, now, stats)
        return stats
    stats.fetched += 1

    # 3-5. save entries, decide developments, announce revisions
    save_entries(ctx, s, feed, prepared, now, stats)

    # 6. update the feed
    if first_sight:
        feed.first_polled_at = now
        if prepared.title and not feed.name:
            feed.name = prepared.title[:300]
    ttl = timedelta(minutes=prepared.ttl_minutes) if prepared.ttl_minutes else None
    apply(feed, feed_succeeded(before, now, longest(hint, ttl), prepared.dates))
    hub, own = discover(result.body or b"")
    if hub and (hub, own or feed.url) != (feed.websub_hub, feed.websub_topic):
        log.info("feed %s names the WebSub hub %s", feed.url, hub)
        feed.websub_hub, feed.websub_topic, feed.websub_state = hub, own or feed.url, None
    if ctx.websub_poll and feed.websub_state == "active" and feed.next_poll_at:
        feed.next_poll_at = max(feed.next_poll_at, now + ctx.websub_poll)  # a safety net
    return stats


def prepare_here(
    ctx: Context, s: Session, result: FetchResult, feed: Feed, now: datetime, first_sight: bool
) -> Prepared:
    from monitor.parse import ParseError
    from monitor.prepare import Prepared, prepare_document, read_document

    try:
        doc = read_document(
            result.body or b"",
            result.permanent_url or feed.url,
            result.content_type,
            feed.url,
            now,
            ctx.memo() if ctx.memo is not None else None,
            lazy=not first_sight,
        )
    except ParseError as exc:
        return Prepared(error=str(exc))
    known = {} if first_sight else store.known_hashes(s, feed.id, doc.guids)
    return prepare_document(doc, ctx.matcher(), known)


def save_entries(
    ctx: Context, s: Session, feed: Feed, prepared: Prepared, now: datetime, stats: PollStats
) -> None:
    """Store a document's new and revised entries with their matches, then hand them to
    developments."""
    quiet = prepared.quiet
    known = prepared.against  # what is stored of its entries (checked above)
    fresh = [a for a in prepared.articles if a.guid not in known]
    revised = [a for a in prepared.articles if a.guid in known]
    if not fresh and not revised and not quiet.rows:
        return
    existing = store.entries_by_guid(s, feed.id, [a.guid for a in revised])
    ctx.developments.begin(s, now)  # before any insert: see Developments.begin
    stats.new_entries += len(fresh) + len(quiet.rows)
    stats.updated_entries += len(revised)
    metrics.ENTRIES.labels("new").inc(len(fresh) + len(quiet.rows))
    metrics.ENTRIES.labels("revised").inc(len(revised))
    # New entries where no topic rule holds (most of a general news feed) are only
    # stored and counted as background for the word weights: one bulk insert.
    ids = store.insert_rows(s, feed.id, quiet.rows, now)
    ctx.developments.observe_quiet(ids, quiet.published, quiet.keys)
    changed: list[tuple[Entry, bool]] = []
    for a in revised:
        row = existing[a.guid]
        store.apply_article(row, a, now)
        row.revision += 1
        changed.append((row, False))
    for a in fresh:
        row = store.new_entry(feed.id, a, now)
        s.add(row)
        changed.append((row, True))
    changed.sort(key=lambda c: c[0].published_at)
    # Match before the first flush, so each new row is written once, complete.
    planned: list[tuple[Entry, bool, MatchResult, Features]] = []
    lessons = ctx.lessons()
    for row, is_new in changed:
        result = prepared.matches[row.guid]
        f = features(result, row.language, row.title)
        result = lessons.apply(result, f.words)  # what readers' feedback taught
        store.save_matches(row, result)
        if result.relevant:
            metrics.MATCHES.inc()
        row.cluster_features = features_to_json(f)
        planned.append((row, is_new, result, f))
    if planned:
        s.flush()
        ctx.developments.stored(s, planned, now, stats)


def fail(
    ctx: Context,
    s: Session,
    feed: Feed,
    error: str,
    kind: str,
    now: datetime,
    stats: PollStats,
    retry_after: timedelta | None = None,
    disable: bool = False,
) -> None:
    """Record a failed poll of `feed` (also used when storing its answer failed); `kind`
    is one of errors.KINDS."""
    update = feed_failed(view(feed), now, error, kind, retry_after, disable, ctx.failure_alert)
    apply(feed, update)
    store.release_feed(feed)
    stats.failed(feed.url)
    log.warning(
        "feed %s (%s): %s; next try %s",
        feed.name or "",
        feed.url,
        error,
        feed.next_poll_at.isoformat(timespec="seconds") if feed.next_poll_at else "-",
    )
    if update.report_failing:  # never silently dead: a feed failing this long is reported
        since = feed.last_success_at or feed.created_at
        ctx.outbox.feed_failing(s, feed, since, now)


def apply(feed: Feed, update: FeedUpdate) -> None:
    if update.recovered:
        log.info("feed %s recovered after %d errors", feed.url, feed.error_count)
    for column, value in update.columns.items():
        setattr(feed, column, value)
