"""The outbox: who gets an alert and when (instant, held, digest), and delivering it.

Alert rows and their per-channel delivery rows are written by the pipeline's transaction;
everything after that lives here: routing, digests, the claim-send-record loop with
backoff and dead letters, and what each kind of alert says.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from monitor import metrics, store
from monitor.alerts import AlertContent, ArticleRef, TopicRef, new_alert_id
from monitor.channels import ChannelConfig, ConsoleChannel, Outcome, send
from monitor.config import Settings
from monitor.db import Database, is_sqlite
from monitor.leases import stale_owners
from monitor.models import Alert, Delivery, Development, Entry, Feed
from monitor.routing import last_fire, quiet_until

if TYPE_CHECKING:
    import httpx


log = logging.getLogger("monitor.outbox")

DELIVERY_LEASE = timedelta(minutes=2)


@dataclass
class DeliveryStats:
    delivered: int = 0
    retrying: int = 0
    dead: int = 0


class Outbox:
    def __init__(
        self, settings: Settings, db: Database, clock: Callable[[], datetime], owner: str
    ) -> None:
        self.settings = settings
        self.db = db
        self.clock = clock
        self.owner = owner
        self.channels: dict[str, ChannelConfig] = dict(
            zip(settings.channel_names(), settings.channels, strict=True)
        )
        if not self.channels:
            self.channels = {"console": ConsoleChannel(type="console", name="console")}

    def announce(
        self, s: Session, dev: Development, now: datetime, topics: Sequence[TopicRef] = ()
    ) -> Alert:
        """The alert for a development and a delivery row for each channel that wants it,
        in the caller's transaction. `topics` (with their titles and evidence) are frozen
        into the alert: what it says about topics does not change, nor need a matcher."""
        routes = [
            self._route(s, name, ch, now)
            for name, ch in self.channels.items()
            if ch.wants(dev.topics, dev.score)
        ]
        alert = store.add_alert(
            s, dev, new_alert_id(), routes, now, {"topics": [t.to_json() for t in topics]}
        )
        metrics.ALERTS.labels("development").inc()
        return alert

    def feed_failing(self, s: Session, feed: Feed, since: datetime, now: datetime) -> None:
        """A feed-health alert to every channel, in the caller's transaction."""
        alert = Alert(
            public_id=new_alert_id(),
            kind="feed-health",
            created_at=now,
            payload={
                "feed_url": feed.url,
                "feed_name": feed.name,
                "error": feed.last_error,
                "failing_since": since.isoformat(),
                "errors": feed.error_count,
            },
        )
        for name in self.channels:
            alert.deliveries.append(
                Delivery(channel=name, status="pending", next_attempt_at=now, created_at=now)
            )
        s.add(alert)
        metrics.ALERTS.labels("feed-health").inc()
        log.error("feed %s has failed since %s: %s", feed.url, since.isoformat(), feed.last_error)

    def _route(
        self, s: Session, name: str, ch: ChannelConfig, now: datetime
    ) -> tuple[str, str, datetime]:
        """(channel, status, first attempt): instant, held past quiet hours, or waiting
        for the digest (digest channels, and instant ones over their rate limit)."""
        if ch.mode == "digest":
            return name, "waiting", now
        rate = ch.rate_limit
        if rate and store.instant_sent_since(s, name, now - rate.per) >= rate.limit:
            log.info("channel %s is over its rate limit; the alert joins its digest", name)
            return name, "waiting", now
        held = quiet_until(now, ch.quiet_hours, ch.timezone)
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
                    after = store.last_digest_fire(s, name) or min(
                        d.created_at or now for d in pending
                    )
                    fire = last_fire(ch.digest_cron, ch.timezone, after, now)
                    if fire is None:
                        continue
                    rows = [d for d in pending if (d.created_at or now) <= fire]
                    if not rows:
                        continue
                    digest = Alert(
                        public_id=new_alert_id(),
                        kind="digest",
                        created_at=now,
                        digest_key=f"{name}@{fire.isoformat()}",
                    )
                    digest.deliveries.append(
                        Delivery(
                            channel=name, status="pending", next_attempt_at=now, created_at=now
                        )
                    )
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

    async def deliver_due(self) -> DeliveryStats:
        """Send every due delivery once; failures are rescheduled with backoff and jitter."""
        stats = DeliveryStats()
        self.build_digests()
        stale = stale_owners(is_sqlite(self.db.engine))
        # Made when there is work: a poll with nothing to deliver never loads httpx.
        client: httpx.AsyncClient | None = None
        try:
            while True:
                now = self.clock()
                with self.db.session() as s:
                    batch = store.claim_deliveries(s, now, self.owner, DELIVERY_LEASE, stale)
                    reports = self._prefetch(s, batch)
                    work = [
                        (d.id, d.channel, d.attempts, self._content(s, d.alert, reports))
                        for d in batch
                    ]
                if not work:
                    return stats
                if client is None:
                    import httpx

                    client = httpx.AsyncClient()
                by_channel: dict[str, list[tuple[int, int, AlertContent]]] = {}
                for delivery_id, channel, attempts, content in work:
                    by_channel.setdefault(channel, []).append((delivery_id, attempts, content))
                # Channels in parallel, each channel's deliveries in order: a slow receiver
                # holds back only its own channel (and each send has a total deadline).
                async with asyncio.TaskGroup() as group:
                    for channel, items in by_channel.items():
                        group.create_task(self._deliver_channel(channel, items, client, stats))
        finally:
            if client is not None:
                await client.aclose()

    async def _deliver_channel(
        self,
        channel: str,
        items: list[tuple[int, int, AlertContent]],
        client: httpx.AsyncClient,
        stats: DeliveryStats,
    ) -> None:
        ch = self.channels.get(channel)
        for delivery_id, attempts, content in items:
            if ch is None:
                outcome = Outcome(
                    False, retry=False, error=f"channel {channel!r} is no longer configured"
                )
            else:
                started = time.perf_counter()
                outcome = await send(ch, content, self.clock(), client)
                metrics.DELIVERY_SECONDS.labels(channel).observe(time.perf_counter() - started)
            result = "delivered" if outcome.delivered else "retry" if outcome.retry else "failed"
            metrics.DELIVERIES.labels(channel, result).inc()
            self._record_outcome(delivery_id, attempts + 1, outcome, stats)

    def _record_outcome(
        self, delivery_id: int, attempt: int, outcome: Outcome, stats: DeliveryStats
    ) -> None:
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
                log.error(
                    "delivery %s to %s failed for good after %d attempts: %s",
                    d.alert.public_id,
                    d.channel,
                    attempt,
                    outcome.error,
                )
                return
            delay = min(alerts.retry_max, alerts.retry_initial * 2 ** (attempt - 1))
            delay = delay * (0.5 + random.random() / 2)  # "equal jitter"
            if outcome.retry_after is not None:
                delay = max(delay, min(outcome.retry_after, alerts.retry_max))
            d.next_attempt_at = now + delay
            stats.retrying += 1
            log.warning(
                "delivery %s to %s failed (attempt %d): %s; retry in %.0fs",
                d.alert.public_id,
                d.channel,
                attempt,
                outcome.error,
                delay.total_seconds(),
            )

    @staticmethod
    def _prefetch(s: Session, batch: Sequence[Delivery]) -> dict[int, list[Entry]]:
        """Load a batch's alerts, developments, reports and feeds in four queries instead
        of several per delivery (a start-up backfill alerts hundreds at once); the rows
        stay in the session, where `_content` finds them. The reports by development."""
        alerts = s.scalars(select(Alert).where(Alert.id.in_({d.alert_id for d in batch}))).all()
        devs = {a.development_id for a in alerts if a.development_id is not None}
        if not devs:
            return {}
        s.scalars(select(Development).where(Development.id.in_(devs))).all()
        reports: dict[int, list[Entry]] = {dev: [] for dev in devs}
        for e in store.development_entries_of(s, devs):
            reports[e.development_id or 0].append(e)
        feeds = {e.feed_id for rows in reports.values() for e in rows}
        s.scalars(select(Feed).where(Feed.id.in_(feeds))).all()
        return reports

    def _content(
        self, s: Session, alert: Alert, reports: dict[int, list[Entry]] | None = None
    ) -> AlertContent:
        if alert.kind == "digest":
            return self._digest_content(s, alert)
        if alert.kind == "feed-health":
            p = alert.payload
            name = p.get("feed_name") or p["feed_url"]
            return AlertContent(
                id=alert.public_id,
                kind="feed-health",
                created_at=alert.created_at,
                title=f"Feed failing: {name}",
                score=0.0,
                topics=[],
                articles=[
                    ArticleRef(
                        url=p["feed_url"],
                        title=f"Last error: {p.get('error')}",
                        source=name,
                        published=alert.created_at,
                        summary=f"Failing since {p.get('failing_since')}, "
                        f"{p.get('errors')} errors in a row.",
                    )
                ],
            )
        return self._development_content(s, alert, reports)

    def _digest_content(self, s: Session, alert: Alert) -> AlertContent:
        """A digest: each development's primary report, in the order they were alerted."""
        parts = s.scalars(
            select(Delivery)
            .where(Delivery.digest_alert_id == alert.id)
            .order_by(Delivery.created_at, Delivery.id)
        )
        articles: list[ArticleRef] = []
        topics: dict[str, TopicRef] = {}
        for d in parts:
            one = self._development_content(s, d.alert)
            articles += one.articles[:1]
            for t in one.topics:
                topics.setdefault(t.id, t)
        n = len(articles)
        return AlertContent(
            id=alert.public_id,
            kind="digest",
            created_at=alert.created_at,
            title=f"Digest: {n} new development{'s' if n != 1 else ''}",
            score=max((t.score for t in topics.values()), default=0.0),
            topics=list(topics.values()),
            articles=articles,
        )

    def _development_content(
        self, s: Session, alert: Alert, reports: dict[int, list[Entry]] | None = None
    ) -> AlertContent:
        """The alert as sent now: its frozen topics, and the development with every
        report known so far (a redelivery carries the reports that arrived meanwhile)."""
        dev = s.get(Development, alert.development_id) if alert.development_id else None
        if dev is None:
            entries = []
        elif reports is not None and dev.id in reports:
            entries = list(reports[dev.id])
        else:
            entries = store.development_entries(s, dev.id)
        if dev is not None and dev.primary_entry_id is not None:
            entries.sort(key=lambda e: (e.id != dev.primary_entry_id, e.first_seen_at, e.id))
        # in the session already when prefetched: get() then asks no query
        feeds = {i: s.get(Feed, i) for i in {e.feed_id for e in entries}}
        articles = []
        seen_urls: set[str] = set()
        for e in entries:
            url = e.canonical_url or e.url or ""
            if url in seen_urls:
                continue
            seen_urls.add(url)
            f = feeds.get(e.feed_id)
            articles.append(
                ArticleRef(
                    url=url,
                    title=e.title,
                    source=(f.name or f.url) if f else "",
                    published=e.published_at,
                    language=e.language,
                    summary=e.text[:500],
                )
            )
        frozen = (alert.payload or {}).get("topics")
        if frozen is not None:
            topics = [TopicRef.from_json(t) for t in frozen]
        else:  # written before topics were frozen into alerts: the development's own
            topics = [TopicRef(t, t, dev.score) for t in dev.topics] if dev else []
        return AlertContent(
            id=alert.public_id,
            kind=alert.kind,
            created_at=alert.created_at,
            title=dev.title if dev else "",
            score=dev.score if dev else 0.0,
            topics=topics,
            articles=articles,
            development_id=dev.id if dev else None,
        )
