"""The pipeline: poll → fetch → parse → normalize/dedupe → store → match → cluster → outbox
→ deliver. This module composes the pure steps with the I/O edges and owns transactions;
what happens to an alert after it is written lives in outbox.py.

Each feed's result is processed in one transaction: its entries, their matches, their
developments and any alert's outbox rows commit together or not at all, so a crash never
leaves an alert without its development or a development without its alert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections import deque
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from monitor import metrics, store
from monitor.cluster import (
    ClusterIndex,
    ClusterParams,
    Features,
    Member,
    features,
    features_from_json,
    features_to_json,
    keys_from_json,
)
from monitor.config import DEFAULT_INTERVAL, Settings
from monitor.db import Database
from monitor.deliver import parse_retry_after
from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream
from monitor.lanes import FeedState, Lanes, changed
from monitor.models import PENDING, Development, Entry, Feed, TopicMatch
from monitor.outbox import DeliveryStats, Outbox
from monitor.schedule import MAX_HINT, adaptive_interval, next_error, next_success

if TYPE_CHECKING:
    from monitor.match import Matcher, MatchResult
    from monitor.normalize import Article
    from monitor.prepare import Prepared

log = logging.getLogger("monitor.pipeline")

FEED_LEASE = timedelta(minutes=5)
NOT_MODIFIED_BATCH = 200
# Changed feeds stored per transaction: one commit and one flush of feed rows for many,
# gathered for at most BATCH_WAIT seconds.
STORE_BATCH = 16
BATCH_WAIT = 0.2


def utcnow() -> datetime:
    return datetime.now(UTC)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class PollStats:
    feeds: int = 0
    fetched: int = 0
    not_modified: int = 0
    unchanged: int = 0
    errors: int = 0
    new_entries: int = 0
    updated_entries: int = 0
    developments: int = 0
    alerts: int = 0
    failed_feeds: list[str] = field(default_factory=list)

    def add(self, other: PollStats) -> None:
        for name in ("feeds", "fetched", "not_modified", "unchanged", "errors", "new_entries",
                     "updated_entries", "developments", "alerts"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failed_feeds += other.failed_feeds


def stored_match(row: Entry, threshold: float) -> MatchResult:
    """An entry's stored topic scores as the match result alert decisions read."""
    from monitor.match import MatchResult, TopicScore

    scores = {m.topic: TopicScore(m.topic, m.score, list(m.evidence)) for m in row.matches}
    return MatchResult(scores, frozenset(), frozenset(), frozenset(), threshold)


def success(url: str, errors: int, interval_seconds: int, now: datetime,
            due: datetime | None, hint: timedelta | None) -> dict[str, Any]:
    """A feed's columns after a successful poll."""
    if errors:
        log.info("feed %s recovered after %d errors", url, errors)
    return {"error_count": 0, "last_error": None, "last_success_at": now,
            "health_alerted_at": None,
            "next_poll_at": next_success(now, due, timedelta(seconds=interval_seconds), hint)}


class Pipeline:
    """One worker's view of the pipeline; `clock` is injectable for tests."""

    def __init__(self, settings: Settings, db: Database,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.owner = worker_id()
        if settings.matching.topics is not None:
            self.matcher  # noqa: B018  (a custom profile is checked at start, not mid-poll)
        self.dialect = db.engine.dialect.name
        processes = settings.service.processes
        self.lanes = Lanes((os.cpu_count() or 1) if processes is None else processes,
                           settings.matching.topics, settings.matching.threshold,
                           self.dialect, self._known_hashes)
        self.laned: bool | None = None  # whether the last poll ran in lanes
        self.cluster = ClusterIndex(ClusterParams(window=settings.matching.cluster_window))
        # Developments first seen at or after this instant count as "this poll's".
        self.fresh_since: datetime | None = None
        http = settings.http
        self.fetch_options = FetchOptions(
            connect_timeout=http.connect_timeout, timeout=http.timeout, max_body=http.max_body,
            concurrency=http.concurrency, per_host=http.per_host,
            allow_link_local=http.allow_link_local,
            **({"user_agent": http.user_agent} if http.user_agent else {}),
        )
        self.outbox = Outbox(settings, db, lambda: self.matcher, clock, self.owner)

    @cached_property
    def matcher(self) -> Matcher:
        """The compiled topic profile, made on first use: a poll whose documents lanes
        prepare, with nothing to alert, never loads the parser and matcher modules."""
        from monitor.match import Matcher, load_profile

        return Matcher(load_profile(self.settings.matching.topics),
                       self.settings.matching.threshold)

    # ------------------------------------------------------------------ polling --

    def expect_poll(self) -> None:
        """Start the lanes of the coming poll now if it will likely use them (as the last
        poll did; the first, if the config lists enough feeds), so they start while this
        process claims the feeds. A wrong guess costs lanes killed before doing anything."""
        likely = self.laned if self.laned is not None else self.lanes.use(len(self.settings.feeds))
        if likely:
            self.lanes.prestart()

    def sync_feeds(self) -> None:
        with self.db.session() as s:
            store.sync_feeds(s, self.settings.feeds, self.clock())

    async def poll(self, only_due: bool = False,
                   fresh_for: timedelta = timedelta(0)) -> PollStats:
        """Fetch every claimed feed and process each result as it arrives.

        Fetching runs in one task, storing in another: in a large poll the lanes (worker
        processes, lanes.py) fetch and prepare while the storing thread writes what they
        send, up to STORE_BATCH changed feeds per transaction; a small poll fetches here
        and prepares in the storing thread. Developments opened during this poll, or
        within `fresh_for` before it (the service passes its polling interval), are
        joined at the lower same-poll bar."""
        now = self.clock()
        self.fresh_since = now - fresh_for
        self.expect_poll()
        try:
            with self.db.session() as s:
                feeds = store.claim_feeds(s, now, self.owner, FEED_LEASE, only_due)
                requests = [FetchRequest(f.id, f.permanent_url or f.url, f.etag,
                                         f.last_modified) for f in feeds]
                state = {f.id: FeedState(f.url, f.body_hash, f.first_polled_at is None)
                         for f in feeds}
        except BaseException:
            self.lanes.discard()
            raise
        self.laned = self.lanes.use(len(requests))
        if not self.laned:
            self.lanes.discard()
        stats = PollStats(feeds=len(requests))
        if not requests:
            return stats
        source = self.lanes.run(requests, state, self.fetch_options, now) \
            if self.laned else self._fetch_here(requests)
        # Changed bodies held at once (arrived, waiting to be stored): enough for a batch
        # and what the lanes send meanwhile; past it they wait, so memory stays flat.
        ahead = 2 * STORE_BATCH
        pending: deque[tuple[FetchResult, Prepared | None]] = deque()
        bodies = 0  # entries of `pending` with a changed body
        arrived = asyncio.Condition()
        fetched_all = False

        def room() -> bool:
            return bodies < ahead

        async def produce() -> None:
            nonlocal bodies, fetched_all
            async for result, prepared in source:
                async with arrived:
                    await arrived.wait_for(room)
                    bodies += changed(result, state[result.feed_id])
                    pending.append((result, prepared))
                    arrived.notify_all()
            async with arrived:
                fetched_all = True
                arrived.notify_all()

        async def consume() -> None:
            nonlocal bodies
            loop = asyncio.get_running_loop()
            batch: list[tuple[FetchResult, Prepared | None]] = []
            changed_feeds = 0  # entries of `batch` with a changed body
            due = 0.0  # when a batch holding changed feeds is stored, full or not
            while True:
                async with arrived:
                    try:
                        async with asyncio.timeout_at(due if changed_feeds else None):
                            await arrived.wait_for(lambda: bool(pending) or fetched_all)
                    except TimeoutError:
                        pass
                    while pending and changed_feeds < STORE_BATCH:
                        batch.append(pending.popleft())
                        if changed(batch[-1][0], state[batch[-1][0].feed_id]):
                            bodies -= 1
                            changed_feeds += 1
                            if changed_feeds == 1:
                                due = loop.time() + BATCH_WAIT
                    arrived.notify_all()
                    end = fetched_all and not pending
                # A batch of changed feeds fills for up to BATCH_WAIT (one commit for
                # many); unchanged feeds alone wait for a larger batch, being only a few
                # column updates each.
                if batch and (end or changed_feeds >= STORE_BATCH
                              or (changed_feeds and loop.time() >= due)
                              or len(batch) >= NOT_MODIFIED_BATCH):
                    stats.add(await asyncio.to_thread(self.process_batch, batch))
                    batch, changed_feeds = [], 0
                if end:
                    return

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(produce())
                group.create_task(consume())
        finally:
            await source.aclose()
        stats.add(await asyncio.to_thread(self.settle))
        return stats

    async def _fetch_here(self, requests: list[FetchRequest]
                          ) -> AsyncGenerator[tuple[FetchResult, Prepared | None], None]:
        async for result in fetch_stream(requests, self.fetch_options):
            yield result, None

    def process_batch(self, batch: Sequence[tuple[FetchResult, Prepared | None]]) -> PollStats:
        """Store several fetched feeds in one transaction (one commit, one flush of the feed
        rows); should that fail, each is stored on its own, so a failure stays one feed's."""
        if len(batch) == 1:
            return self.process_result(*batch[0])
        now = self.clock()
        stats = PollStats()
        try:
            with self.db.session() as s:
                rest = self._not_modified(s, [r for r, _ in batch if r.not_modified], now,
                                          stats)
                rest.update(r.feed_id for r, _ in batch if not r.not_modified)
                feeds = store.feeds_by_id(s, sorted(rest))
                for result, prepared in batch:
                    if (feed := feeds.get(result.feed_id)) is not None:
                        self._process(s, feed, result, prepared, now, stats)
            return stats
        except Exception:
            log.exception("storing %d feeds at once failed; one by one", len(batch))
            self._forget_clustering()
        stats = PollStats()
        for result, prepared in batch:
            stats.add(self.process_result(result, prepared))
        return stats

    def process_result(self, result: FetchResult, prepared: Prepared | None = None) -> PollStats:
        """Everything that follows one fetch, in one transaction; `prepared` is the body
        already parsed and matched in a worker, else it is done here."""
        now = self.clock()
        stats = PollStats()
        try:
            with self.db.session() as s:
                feed = s.get(Feed, result.feed_id)
                if feed is None:
                    return stats
                self._process(s, feed, result, prepared, now, stats)
        except Exception as exc:  # one feed's failure must not end the poll
            log.exception("feed %s: processing failed", result.url)
            self._forget_clustering()
            # What was counted was rolled back: only the failure counts.
            stats = PollStats(errors=1, failed_feeds=[result.url])
            with self.db.session() as s:
                feed = s.get(Feed, result.feed_id)
                if feed is not None:
                    self._record_error(s, feed, f"processing failed: {exc}", now)
        return stats

    def _process(self, s: Session, feed: Feed, result: FetchResult,
                 prepared: Prepared | None, now: datetime, stats: PollStats) -> None:
        first_sight = feed.first_polled_at is None
        due = feed.next_poll_at
        feed.last_polled_at = now
        feed.last_status = result.status
        store.release_feed(feed)
        metrics.POLLS.labels("error" if result.error else
                             "not_modified" if result.not_modified else "ok").inc()
        if result.status == 410:
            feed.enabled = False
            self._record_error(s, feed, "gone (HTTP 410): the feed is disabled", now)
            stats.errors += 1
            stats.failed_feeds.append(feed.url)
            return
        if result.error is not None:
            retry_after = parse_retry_after(result.retry_after, now) \
                if result.status in (429, 503) else None
            self._record_error(s, feed, result.error, now, retry_after)
            stats.errors += 1
            stats.failed_feeds.append(feed.url)
            return
        if result.permanent_url and result.permanent_url != (feed.permanent_url or feed.url):
            # Polled at the new address from now on; `url` stays as configured, so the
            # config file and the database keep agreeing on which feed this is.
            log.info("feed %s moved permanently to %s", feed.url, result.permanent_url)
            feed.permanent_url = result.permanent_url
        feed.etag, feed.last_modified = result.etag, result.last_modified
        hint = timedelta(seconds=result.max_age) if result.max_age is not None else None
        self._record_success(feed, now, due, hint)
        if result.not_modified:
            stats.not_modified += 1
            return
        if result.body_hash and result.body_hash == feed.body_hash:
            stats.unchanged += 1
            return
        if prepared is not None and prepared.error is None and not first_sight:
            # A lane split the document into quiet rows and articles assuming what was
            # stored (`against`); in this transaction, that is checked.
            known = store.known_hashes(s, feed.id, list(prepared.hashes))
            if prepared.against != known:
                prepared = None
        if prepared is None:
            prepared = self._prepare_here(s, result, feed, now, first_sight)
        if prepared.error is not None:
            self._record_error(s, feed, prepared.error, now)
            stats.errors += 1
            stats.failed_feeds.append(feed.url)
            return
        stats.fetched += 1
        if first_sight:
            feed.first_polled_at = now
            if prepared.title and not feed.name:
                feed.name = prepared.title[:300]
        feed.body_hash = result.body_hash
        if prepared.ttl_minutes:
            ttl = timedelta(minutes=prepared.ttl_minutes)
            feed.next_poll_at = max(feed.next_poll_at or now, now + min(ttl, MAX_HINT))
        if feed.adaptive:
            feed.interval_seconds = int(adaptive_interval(DEFAULT_INTERVAL, prepared.dates)
                                        .total_seconds())
        self._store_articles(s, feed, prepared, now, stats)

    def _prepare_here(self, s: Session, result: FetchResult, feed: Feed, now: datetime,
                      first_sight: bool) -> Prepared:
        from monitor.parse import ParseError
        from monitor.prepare import Prepared, prepare_document, read_document

        try:
            doc = read_document(result.body or b"", result.permanent_url or feed.url,
                                result.content_type, feed.url, now)
        except ParseError as exc:
            return Prepared(error=str(exc))
        known = {} if first_sight else store.known_hashes(s, feed.id, doc.guids)
        return prepare_document(doc, self.matcher, known, self.dialect)

    def _known_hashes(self, feed_id: int, guids: list[str]) -> dict[str, str]:
        """What a lane asks before splitting a document of a feed polled before."""
        with self.db.session() as s:
            return store.known_hashes(s, feed_id, guids)

    def _record_error(self, s: Session, feed: Feed, error: str, now: datetime,
                      retry_after: timedelta | None = None) -> None:
        feed.error_count += 1
        feed.last_error = error[:2000]
        feed.last_polled_at = now
        feed.next_poll_at = next_error(now, timedelta(seconds=feed.interval_seconds),
                                       feed.error_count, retry_after)
        store.release_feed(feed)
        log.warning("feed %s (%s): %s; next try %s", feed.name or "", feed.url, error,
                    feed.next_poll_at.isoformat(timespec="seconds"))
        limit = self.settings.alerts.feed_failure_alert
        since = feed.last_success_at or feed.created_at
        if limit and feed.health_alerted_at is None and now - since >= limit:
            # Never silently dead: a feed failing this long is reported once.
            feed.health_alerted_at = now
            self.outbox.feed_failing(s, feed, since, now)


    def _record_success(self, feed: Feed, now: datetime, due: datetime | None,
                        hint: timedelta | None = None) -> None:
        for column, value in success(feed.url, feed.error_count, feed.interval_seconds,
                                     now, due, hint).items():
            setattr(feed, column, value)

    def _not_modified(self, s: Session, results: Sequence[FetchResult], now: datetime,
                      stats: PollStats) -> set[int]:
        """Record plain "not modified" answers, the bulk of most polls, in one UPDATE
        (what _process does for them, on plain rows: a thousand ORM objects cost more
        than the rest of a warm poll's storing). Returns the feeds that need _process."""
        if not results:
            return set()
        rows = store.schedules(s, [r.feed_id for r in results])
        values = []
        for r in results:
            row = rows.get(r.feed_id)
            if row is None:
                continue
            if r.error is not None or (r.permanent_url
                                       and r.permanent_url != (row.permanent_url or row.url)):
                rows.pop(r.feed_id)
                continue
            hint = timedelta(seconds=r.max_age) if r.max_age is not None else None
            values.append({"feed_id": r.feed_id, "last_polled_at": now,
                           "last_status": r.status, "lease_owner": None, "lease_until": None,
                           "etag": r.etag, "last_modified": r.last_modified,
                           **success(row.url, row.error_count, row.interval_seconds, now,
                                     row.next_poll_at, hint)})
        store.update_feeds(s, values)
        metrics.POLLS.labels("not_modified").inc(len(values))
        stats.not_modified += len(values)
        return {r.feed_id for r in results} - rows.keys()

    # ---------------------------------------------------------- store + match --

    def _store_articles(self, s: Session, feed: Feed, prepared: Prepared, now: datetime,
                        stats: PollStats) -> None:
        quiet = prepared.quiet
        known = prepared.against  # what is stored of its entries (checked above)
        fresh = [a for a in prepared.articles if a.guid not in known]
        revised = [a for a in prepared.articles if a.guid in known]
        if not fresh and not revised and not quiet.rows:
            return
        existing = store.entries_by_guid(s, feed.id, [a.guid for a in revised])
        # Take the clustering lock before any insert, so entry ids grow in commit order and
        # the in-memory index can catch up on other workers' entries by id; catch up now,
        # before this feed's own entries get ids. Once per transaction: from then on it
        # holds the lock (and on SQLite the write lock), so no one else inserts.
        if not s.info.get("clustering"):
            store.lock_clustering(s)
            self._refresh_cluster_index(s, now)
            s.info["clustering"] = True
        stats.new_entries += len(fresh) + len(quiet.rows)
        stats.updated_entries += len(revised)
        metrics.ENTRIES.labels("new").inc(len(fresh) + len(quiet.rows))
        metrics.ENTRIES.labels("revised").inc(len(revised))
        # New entries where no topic rule holds (most of a general news feed) are only
        # stored and counted as background for the word weights: one bulk insert.
        ids = store.insert_rows(s, feed.id, quiet.rows, now)
        for entry_id, published, keys in zip(ids, quiet.published, quiet.keys, strict=True):
            self.cluster.observe_keys(entry_id, published, keys)
        matches = prepared.matches
        changed: list[tuple[Entry, Article, bool]] = []
        for a in revised:
            row = existing[a.guid]
            store.apply_article(row, a, now)
            row.revision += 1
            changed.append((row, a, False))
        for a in fresh:
            row = store.new_entry(feed.id, a, now)
            s.add(row)
            changed.append((row, a, True))
        changed.sort(key=lambda c: c[1].published_at)
        # Match before the first flush, so each new row is written once, complete.
        planned: list[tuple[Entry, Article, bool, MatchResult, Features]] = []
        for row, a, is_new in changed:
            result = matches[a.guid]
            self._save_matches(row, result)
            if result.relevant:
                metrics.MATCHES.inc()
            f = features(result, a.language, a.title)
            row.cluster_features = features_to_json(f)
            planned.append((row, a, is_new, result, f))
        if not planned:
            return  # nothing more to do; the feed rows of the batch are flushed together
        s.flush()
        # The word weights count every document of this batch before any is placed, as
        # they count every earlier one: how common a word is does not depend on the order
        # in which one feed's entries are compared.
        for row, a, is_new, _, f in planned:
            if is_new:
                self.cluster.observe(row.id, a.published_at, f)
        cutoff = now - self.settings.alerts.backfill
        for row, a, is_new, result, f in planned:
            if row.development_id is not None and not is_new:
                row.join_reason = "update"
                dev = s.get(Development, row.development_id)
                if dev is not None:
                    self._update_development(s, dev, row, result, now, cutoff, stats)
            elif result.scores:
                # Placed by settle() at the end of the poll, with every other on-topic
                # entry the poll stored, in an order that does not depend on which feed
                # answered first.
                row.join_reason = PENDING
            else:
                # No topic rule holds anywhere in it: stored and matched, not clustered
                # (most of a general news feed; clustering it would only cost).
                row.join_reason = "off-topic"
            if row.development_id is not None:
                self.cluster.add(Member(row.id, row.development_id, a.canonical_url,
                                        a.content_hash, a.published_at, f))
            else:
                self.cluster.observe(row.id, a.published_at, f)

    def settle(self) -> PollStats:
        """Place every pending entry (on topic, stored, not yet in a development) into a
        development, opening and announcing new ones; oldest first, ties broken by URL.

        Deciding at the end of the poll, rather than as each feed's answer arrives, makes
        the developments and alerts a function of what was fetched, not of the order in
        which the fetches completed. Pending entries left by a crashed or concurrent poll
        are settled by the next one that gets here (under the clustering lock)."""
        try:
            return self._settle()
        except Exception:  # the entries stay pending: the next poll places them
            log.exception("placing this poll's entries in developments failed")
            self._forget_clustering()
            return PollStats()

    def _settle(self) -> PollStats:
        now = self.clock()
        stats = PollStats()
        with self.db.session() as s:
            if not store.has_pending(s):  # the usual warm poll: nothing new on topic
                return stats
            store.lock_clustering(s)
            pending = store.pending_entries(s)  # read under the lock: no one else places them
            self._refresh_cluster_index(s, now)
            cutoff = now - self.settings.alerts.backfill
            for row in pending:
                result = stored_match(row, self.matcher.threshold)
                f = features_from_json(row.cluster_features or {})
                self._place_new(s, row, result, f, now, cutoff, stats)
                if row.development_id is not None:
                    self.cluster.add(Member(row.id, row.development_id, row.canonical_url,
                                            row.content_hash, row.published_at, f))
        return stats

    def _save_matches(self, row: Entry, result: MatchResult) -> None:
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

    def _forget_clustering(self) -> None:
        """After a rollback the in-memory index may hold entries that were never stored
        (and whose ids will be given to others): start it afresh from what is committed."""
        self.cluster = ClusterIndex(self.cluster.params)

    def _refresh_cluster_index(self, s: Session, now: datetime) -> None:
        """Bring in members other transactions (or earlier runs) stored since last time."""
        window = self.cluster.params.window
        since = now - 2 * window
        self.cluster.prune(since)
        for e in store.recent_entries(s, since, self.cluster.max_entry_id,
                                      self.cluster.params.background):
            if e.development_id is None and e.cluster_features:
                self.cluster.observe_keys(e.id, e.published_at,
                                          keys_from_json(e.cluster_features))
                continue
            if e.cluster_features:
                f = features_from_json(e.cluster_features)
            else:  # stored before features were kept
                old = s.get(Entry, e.id)
                assert old is not None
                f = features(self.matcher.match(old.title, old.text), e.language, old.title)
            if e.development_id is None:
                self.cluster.observe(e.id, e.published_at, f)
            else:
                self.cluster.add(Member(e.id, e.development_id, e.canonical_url,
                                        e.content_hash, e.published_at, f))

    def _place_new(self, s: Session, row: Entry, result: MatchResult, f: Features,
                   now: datetime, cutoff: datetime, stats: PollStats) -> None:
        fresh = store.developments_since(s, self.fresh_since) if self.fresh_since else set()
        assignment = self.cluster.assign(row.canonical_url, row.content_hash, row.published_at, f,
                                         frozenset(fresh))
        if assignment.development_id is not None:
            dev = s.get(Development, assignment.development_id)
            if dev is not None:
                row.development_id = dev.id
                row.join_reason = f"{assignment.reason}:{assignment.similarity}"
                self._update_development(s, dev, row, result, now, cutoff, stats)
                return
        dev = Development(title=row.title or row.text[:200], topics=result.topics,
                          score=result.best, first_seen_at=now, last_seen_at=now,
                          event_at=row.published_at,
                          state="history" if row.published_at < cutoff else "quiet")
        s.add(dev)
        s.flush()
        dev.primary_entry_id = row.id
        row.development_id = dev.id
        row.join_reason = "new"
        stats.developments += 1
        metrics.DEVELOPMENTS.inc()
        if not f.commentary:  # analysis of an event we did not see is not an event
            self._maybe_alert(s, dev, row, result, now, stats)

    def _update_development(self, s: Session, dev: Development, row: Entry,
                            result: MatchResult, now: datetime, cutoff: datetime,
                            stats: PollStats) -> None:
        dev.last_seen_at = now
        if result.relevant:
            dev.topics = sorted(set(dev.topics) | set(result.topics))
            dev.score = max(dev.score, result.best)
        if dev.state == "quiet" and row.published_at >= cutoff:
            self._maybe_alert(s, dev, row, result, now, stats)

    def _maybe_alert(self, s: Session, dev: Development, row: Entry,
                     result: MatchResult, now: datetime, stats: PollStats) -> None:
        """A development is announced once: when it is first seen on topic, if recent."""
        if dev.state != "quiet" or not result.relevant:
            return
        dev.state = "alerted"
        dev.primary_entry_id = row.id
        dev.title = row.title or dev.title
        dev.topics = result.topics
        dev.score = result.best
        self.outbox.announce(s, dev, now)
        stats.alerts += 1
        log.info("alert: %s [%s] %.2f", dev.title, ", ".join(dev.topics), dev.score)

    # --------------------------------------------------------------- delivery --

    async def deliver_due(self) -> DeliveryStats:
        return await self.outbox.deliver_due()

    def build_digests(self) -> int:
        return self.outbox.build_digests()
