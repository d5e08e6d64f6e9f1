"""The pipeline: poll → fetch → parse → normalize/dedupe → store → match → cluster → outbox
→ deliver. This module composes the pure steps with the I/O edges and owns transactions.

Each feed's result is processed in one transaction: its entries, their matches, their
developments and any alert's outbox rows commit together or not at all, so a crash never
leaves an alert without its development or a development without its alert.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import metrics, store
from monitor.alerts import AlertContent, ArticleRef, TopicRef, new_alert_id
from monitor.cluster import (
    ClusterIndex,
    ClusterParams,
    Features,
    Member,
    features,
    features_from_json,
    features_to_json,
)
from monitor.config import DEFAULT_INTERVAL, ConsoleChannel, Settings
from monitor.db import Database, is_sqlite
from monitor.deliver import ChannelConfig, Outcome, parse_retry_after, send
from monitor.fetch import FetchOptions, FetchRequest, FetchResult, fetch_stream
from monitor.match import Matcher, MatchResult, load_profile
from monitor.models import Alert, Delivery, Development, Entry, Feed, TopicMatch
from monitor.normalize import Article, dedupe, normalize_entry
from monitor.parse import ParseError, parse_feed
from monitor.routing import last_fire, parse_quiet_hours, parse_rate, quiet_until
from monitor.schedule import MAX_HINT, adaptive_interval, next_error, next_success

log = logging.getLogger("monitor.pipeline")

FEED_LEASE = timedelta(minutes=5)
DELIVERY_LEASE = timedelta(minutes=2)


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


@dataclass
class DeliveryStats:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0


class Pipeline:
    """One worker's view of the pipeline; `clock` is injectable for tests."""

    def __init__(self, settings: Settings, db: Database,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.owner = worker_id()
        self.matcher = Matcher(load_profile(settings.matching.topics),
                               settings.matching.threshold)
        self.cluster = ClusterIndex(ClusterParams(window=settings.matching.cluster_window))
        # Developments first seen at or after this instant count as "this poll's".
        self.fresh_since: datetime | None = None
        http = settings.http
        self.fetch_options = FetchOptions(
            connect_timeout=http.connect_timeout, timeout=http.timeout, max_body=http.max_body,
            concurrency=http.concurrency, per_host=http.per_host,
            **({"user_agent": http.user_agent} if http.user_agent else {}),
        )
        self.channels: dict[str, ChannelConfig] = dict(
            zip(settings.channel_names(), settings.channels, strict=True))
        if not self.channels:
            self.channels = {"console": ConsoleChannel(type="console", name="console")}

    # ------------------------------------------------------------------ polling --

    def sync_feeds(self) -> None:
        with self.db.session() as s:
            store.sync_feeds(s, self.settings.feeds, self.clock())

    async def poll(self, only_due: bool = False,
                   fresh_for: timedelta = timedelta(0)) -> PollStats:
        """Fetch every claimed feed and process each result as it arrives.

        Developments opened during this poll, or within `fresh_for` before it (the service
        passes its polling interval), are joined at the lower same-poll bar."""
        now = self.clock()
        self.fresh_since = now - fresh_for
        with self.db.session() as s:
            feeds = store.claim_feeds(s, now, self.owner, FEED_LEASE, only_due)
            requests = [FetchRequest(f.id, f.permanent_url or f.url, f.etag, f.last_modified)
                        for f in feeds]
        stats = PollStats(feeds=len(requests))
        if not requests:
            return stats
        async for result in fetch_stream(requests, self.fetch_options):
            stats.add(await asyncio.to_thread(self.process_result, result))
        return stats

    def process_result(self, result: FetchResult) -> PollStats:
        """Everything that follows one fetch, in one transaction."""
        now = self.clock()
        stats = PollStats()
        try:
            with self.db.session() as s:
                feed = s.get(Feed, result.feed_id)
                if feed is None:
                    return stats
                self._process(s, feed, result, now, stats)
        except Exception as exc:  # one feed's failure must not end the poll
            log.exception("feed %s: processing failed", result.url)
            stats.errors += 1
            stats.failed_feeds.append(result.url)
            with self.db.session() as s:
                feed = s.get(Feed, result.feed_id)
                if feed is not None:
                    self._record_error(s, feed, f"processing failed: {exc}", now)
        return stats

    def _process(self, s: Session, feed: Feed, result: FetchResult, now: datetime,
                 stats: PollStats) -> None:
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
        try:
            parsed = parse_feed(result.body or b"", result.permanent_url or feed.url,
                                result.content_type)
        except ParseError as exc:
            self._record_error(s, feed, str(exc), now)
            stats.errors += 1
            stats.failed_feeds.append(feed.url)
            return
        stats.fetched += 1
        if first_sight:
            feed.first_polled_at = now
            if parsed.title and not feed.name:
                feed.name = parsed.title[:300]
        feed.body_hash = result.body_hash
        if parsed.ttl_minutes:
            ttl = timedelta(minutes=parsed.ttl_minutes)
            feed.next_poll_at = max(feed.next_poll_at or now, now + min(ttl, MAX_HINT))
        normalized = (normalize_entry(e, feed.url, parsed.language, now) for e in parsed.entries)
        # An entry with no title, no text and no link (a broken item) carries nothing.
        articles = dedupe([a for a in normalized if a.title or a.text or a.url])
        articles.sort(key=lambda a: a.published_at)  # oldest first: first reports open events
        if feed.adaptive:
            dated = [a.published_at for a in articles if not a.date_estimated]
            feed.interval_seconds = int(adaptive_interval(DEFAULT_INTERVAL, dated)
                                        .total_seconds())
        self._store_articles(s, feed, articles, now, stats)

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
        self._maybe_feed_health_alert(s, feed, now)

    def _maybe_feed_health_alert(self, s: Session, feed: Feed, now: datetime) -> None:
        """A feed failing for `alerts.feed_failure_alert` is reported once to every channel;
        it is never silently dead."""
        limit = self.settings.alerts.feed_failure_alert
        since = feed.last_success_at or feed.created_at
        if not limit or feed.health_alerted_at is not None or now - since < limit:
            return
        feed.health_alerted_at = now
        alert = Alert(public_id=new_alert_id(), kind="feed-health", created_at=now, payload={
            "feed_url": feed.url, "feed_name": feed.name, "error": feed.last_error,
            "failing_since": since.isoformat(), "errors": feed.error_count})
        for name in self.channels:
            alert.deliveries.append(Delivery(channel=name, status="pending",
                                             next_attempt_at=now, created_at=now))
        s.add(alert)
        metrics.ALERTS.labels("feed-health").inc()
        log.error("feed %s has failed since %s: %s", feed.url, since.isoformat(), feed.last_error)

    def _record_success(self, feed: Feed, now: datetime, due: datetime | None,
                        hint: timedelta | None = None) -> None:
        if feed.error_count:
            log.info("feed %s recovered after %d errors", feed.url, feed.error_count)
        feed.error_count = 0
        feed.last_error = None
        feed.last_success_at = now
        feed.health_alerted_at = None
        feed.next_poll_at = next_success(now, due, timedelta(seconds=feed.interval_seconds),
                                         hint)

    # ---------------------------------------------------------- store + match --

    def _store_articles(self, s: Session, feed: Feed, articles: list[Article],
                        now: datetime, stats: PollStats) -> None:
        existing = store.existing_entries(s, feed.id, [a.guid for a in articles])
        fresh = [a for a in articles if a.guid not in existing]
        revised = [a for a in articles
                   if a.guid in existing and existing[a.guid].content_hash != a.content_hash]
        if not fresh and not revised:
            return
        # Take the clustering lock before any insert, so entry ids grow in commit order and
        # the in-memory index can catch up on other workers' entries by id.
        store.lock_clustering(s)
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
        stats.new_entries += len(fresh)
        stats.updated_entries += len(revised)
        metrics.ENTRIES.labels("new").inc(len(fresh))
        metrics.ENTRIES.labels("revised").inc(len(revised))
        changed.sort(key=lambda c: c[1].published_at)
        # Match before the first flush, so each new row is written once, complete.
        planned: list[tuple[Entry, Article, bool, MatchResult, Features]] = []
        for row, a, is_new in changed:
            result = self.matcher.match_article(a)
            self._save_matches(row, result)
            if result.relevant:
                metrics.MATCHES.inc()
            f = features(result, a.language, a.title)
            row.cluster_features = features_to_json(f)
            planned.append((row, a, is_new, result, f))
        s.flush()
        self._refresh_cluster_index(s, now)
        cutoff = now - self.settings.alerts.backfill
        for row, a, is_new, result, f in planned:
            if row.development_id is not None and not is_new:
                row.join_reason = "update"
                dev = s.get(Development, row.development_id)
                if dev is not None:
                    self._update_development(s, dev, row, result, now, cutoff, stats)
            elif result.scores:
                self._place_new(s, row, a, result, f, now, cutoff, stats)
            else:
                # No topic rule holds anywhere in it: stored and matched, not clustered
                # (most of a general news feed; clustering it would only cost).
                row.join_reason = "off-topic"
            if row.development_id is not None:
                self.cluster.add(Member(row.id, row.development_id, a.canonical_url,
                                        a.content_hash, a.published_at, f))
            else:
                self.cluster.observe(row.id, a.published_at, f)

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

    def _refresh_cluster_index(self, s: Session, now: datetime) -> None:
        """Bring in members other transactions (or earlier runs) stored since last time."""
        window = self.cluster.params.window
        since = now - 2 * window
        self.cluster.prune(since)
        for e in store.recent_entries(s, since, self.cluster.max_entry_id):
            f = features_from_json(e.cluster_features) if e.cluster_features \
                else features(self.matcher.match(e.title, e.text), e.language, e.title)
            if e.development_id is None:
                self.cluster.observe(e.id, e.published_at, f)
            else:
                self.cluster.add(Member(e.id, e.development_id, e.canonical_url,
                                        e.content_hash, e.published_at, f))

    def _place_new(self, s: Session, row: Entry, a: Article,
                   result: MatchResult, f: Features, now: datetime, cutoff: datetime,
                   stats: PollStats) -> None:
        fresh = store.developments_since(s, self.fresh_since) if self.fresh_since else set()
        assignment = self.cluster.assign(a.canonical_url, a.content_hash, a.published_at, f,
                                         frozenset(fresh))
        if assignment.development_id is not None:
            dev = s.get(Development, assignment.development_id)
            if dev is not None:
                row.development_id = dev.id
                row.join_reason = f"{assignment.reason}:{assignment.similarity}"
                self._update_development(s, dev, row, result, now, cutoff, stats)
                return
        dev = Development(title=a.title or a.text[:200], topics=result.topics,
                          score=result.best, first_seen_at=now, last_seen_at=now,
                          event_at=a.published_at,
                          state="history" if a.published_at < cutoff else "quiet")
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
        routes = [self._route(s, name, ch, now) for name, ch in self.channels.items()
                  if ch.wants(dev.topics, dev.score)]
        store.add_alert(s, dev, new_alert_id(), routes, now)
        stats.alerts += 1
        metrics.ALERTS.labels("development").inc()
        log.info("alert: %s [%s] %.2f", dev.title, ", ".join(dev.topics), dev.score)

    def _route(self, s: Session, name: str, ch: ChannelConfig,
               now: datetime) -> tuple[str, str, datetime]:
        """(channel, status, first attempt): instant, held past quiet hours, or waiting
        for the digest (digest channels, and instant ones over their rate limit)."""
        if ch.mode == "digest":
            return name, "waiting", now
        if ch.rate_limit:
            limit, per = parse_rate(ch.rate_limit)
            if store.instant_sent_since(s, name, now - per) >= limit:
                log.info("channel %s is over its rate limit; the alert joins its digest", name)
                return name, "waiting", now
        quiet = parse_quiet_hours(ch.quiet_hours) if ch.quiet_hours else None
        held = quiet_until(now, quiet, ch.timezone)
        return name, "pending", held or now

    def build_digests(self) -> int:
        """Gather each channel's waiting alerts into one digest per schedule firing.

        The digest's key (channel and firing time) is unique in the database, so when two
        workers get here together one builds it and the other's insert fails harmlessly."""
        built = 0
        now = self.clock()
        for name, ch in self.channels.items():
            if ch.mode != "digest" and not ch.rate_limit:
                continue
            try:
                with self.db.session() as s:
                    pending = store.waiting(s, name)
                    if not pending:
                        continue
                    # The first digest is the first firing after the oldest waiting alert.
                    after = store.last_digest_fire(s, name) or \
                        min(d.created_at or now for d in pending)
                    fire = last_fire(ch.digest_cron, ch.timezone, after, now)
                    if fire is None:
                        continue
                    rows = [d for d in pending if (d.created_at or now) <= fire]
                    if not rows:
                        continue
                    digest = Alert(public_id=new_alert_id(), kind="digest", created_at=now,
                                   digest_key=f"{name}@{fire.isoformat()}")
                    digest.deliveries.append(Delivery(channel=name, status="pending",
                                                      next_attempt_at=now, created_at=now))
                    s.add(digest)
                    s.flush()
                    for d in rows:
                        d.status, d.digest_alert_id = "digested", digest.id
                    built += 1
                    metrics.ALERTS.labels("digest").inc()
                    log.info("digest for %s: %d alerts", name, len(rows))
            except IntegrityError:
                log.info("digest for %s was built by another worker", name)
        return built

    # --------------------------------------------------------------- delivery --

    async def deliver_due(self) -> DeliveryStats:
        """Send every due delivery once; failures are rescheduled with backoff and jitter."""
        stats = DeliveryStats()
        self.build_digests()
        reclaim = is_sqlite(self.db.engine)
        async with httpx.AsyncClient() as client:
            while True:
                now = self.clock()
                with self.db.session() as s:
                    batch = store.claim_deliveries(s, now, self.owner, DELIVERY_LEASE, reclaim)
                    work = [(d.id, d.channel, d.attempts, self._content(s, d.alert))
                            for d in batch]
                if not work:
                    return stats
                for delivery_id, channel, attempts, content in work:
                    ch = self.channels.get(channel)
                    if ch is None:
                        outcome = Outcome(False, retry=False,
                                          error=f"channel {channel!r} is no longer configured")
                    else:
                        started = time.perf_counter()
                        outcome = await send(ch, content, self.clock(), client)
                        metrics.DELIVERY_SECONDS.labels(channel).observe(
                            time.perf_counter() - started)
                    metrics.DELIVERIES.labels(channel, "delivered" if outcome.delivered
                                              else "retry" if outcome.retry else "failed").inc()
                    self._record_outcome(delivery_id, attempts + 1, outcome, stats)

    def _record_outcome(self, delivery_id: int, attempt: int, outcome: Outcome,
                        stats: DeliveryStats) -> None:
        now = self.clock()
        alerts = self.settings.alerts
        with self.db.session() as s:
            d = s.get(Delivery, delivery_id)
            if d is None:
                return
            d.attempts = attempt
            d.lease_owner = d.lease_until = None
            if outcome.delivered:
                d.status, d.delivered_at, d.last_error = "delivered", now, outcome.error
                stats.delivered += 1
                return
            d.last_error = outcome.error
            if not outcome.retry or attempt >= alerts.max_attempts:
                d.status = "dead"
                stats.dead += 1
                log.error("delivery %s to %s failed for good after %d attempts: %s",
                          d.alert.public_id, d.channel, attempt, outcome.error)
                return
            delay = min(alerts.retry_max, alerts.retry_initial * 2 ** (attempt - 1))
            delay = delay * (0.5 + random.random() / 2)  # "equal jitter"
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, alerts.retry_max))
            d.next_attempt_at = now + delay
            stats.retrying += 1
            log.warning("delivery %s to %s failed (attempt %d): %s; retry in %.0fs",
                        d.alert.public_id, d.channel, attempt, outcome.error,
                        delay.total_seconds())

    def _content(self, s: Session, alert: Alert) -> AlertContent:
        if alert.kind == "digest":
            return self._digest_content(s, alert)
        if alert.kind == "feed-health":
            p = alert.payload
            name = p.get("feed_name") or p["feed_url"]
            return AlertContent(
                id=alert.public_id, kind="feed-health", created_at=alert.created_at,
                title=f"Feed failing: {name}", score=0.0, topics=[],
                articles=[ArticleRef(url=p["feed_url"], title=f"Last error: {p.get('error')}",
                                     source=name, published=alert.created_at,
                                     summary=f"Failing since {p.get('failing_since')}, "
                                             f"{p.get('errors')} errors in a row.")])
        return self._development_content(s, alert)

    def _digest_content(self, s: Session, alert: Alert) -> AlertContent:
        """A digest: each development's primary report, in the order they were alerted."""
        parts = s.scalars(select(Delivery).where(Delivery.digest_alert_id == alert.id)
                          .order_by(Delivery.created_at, Delivery.id))
        articles: list[ArticleRef] = []
        topics: dict[str, TopicRef] = {}
        for d in parts:
            one = self._development_content(s, d.alert)
            articles += one.articles[:1]
            for t in one.topics:
                topics.setdefault(t.id, t)
        n = len(articles)
        return AlertContent(id=alert.public_id, kind="digest", created_at=alert.created_at,
                            title=f"Digest: {n} new development{'s' if n != 1 else ''}",
                            score=max((t.score for t in topics.values()), default=0.0),
                            topics=list(topics.values()), articles=articles)

    def _development_content(self, s: Session, alert: Alert) -> AlertContent:
        """The alert as sent now: the development with every report known so far."""
        dev = s.get(Development, alert.development_id) if alert.development_id else None
        entries = store.development_entries(s, dev.id) if dev else []
        if dev is not None and dev.primary_entry_id is not None:
            entries.sort(key=lambda e: (e.id != dev.primary_entry_id, e.first_seen_at, e.id))
        feeds = {f.id: f for f in s.scalars(select(Feed).where(
            Feed.id.in_({e.feed_id for e in entries})))} if entries else {}
        articles = []
        seen_urls: set[str] = set()
        for e in entries:
            url = e.canonical_url or e.url or ""
            if url in seen_urls:
                continue
            seen_urls.add(url)
            f = feeds.get(e.feed_id)
            articles.append(ArticleRef(url=url, title=e.title,
                                       source=(f.name or f.url) if f else "",
                                       published=e.published_at, language=e.language,
                                       summary=e.text[:500]))
        primary = entries[0] if entries else None
        topics = []
        if primary is not None:
            titles = {t.id: t.title for t in self.matcher.profile.topics}
            for m in sorted(primary.matches, key=lambda m: -m.score):
                if m.score >= self.matcher.threshold:
                    topics.append(TopicRef(m.topic, titles.get(m.topic, m.topic), m.score,
                                           list(m.evidence)))
        return AlertContent(id=alert.public_id, kind=alert.kind, created_at=alert.created_at,
                            title=dev.title if dev else "", score=dev.score if dev else 0.0,
                            topics=topics, articles=articles,
                            development_id=dev.id if dev else None)
