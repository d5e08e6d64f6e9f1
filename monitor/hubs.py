"""WebSub with the database and the network: subscribing to the hubs feeds name,
confirming to a hub what this monitor asked for, and checking a push before the service
processes it (websub.py says how the parts fit)."""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from monitor.config import Settings
from monitor.db import Database
from monitor.fetch import FetchOptions, FetchResult, make_client
from monitor.models import Feed
from monitor.websub import signature_ok

log = logging.getLogger("monitor.websub")
# A subscription the hub has not confirmed this long after asking is asked for again.
PENDING_FOR = timedelta(minutes=10)


async def subscribe_due(settings: Settings, db: Database, now: datetime) -> int:
    """Ask the hubs for the subscriptions that are missing, unconfirmed too long, or
    ending soon; how many were asked for. Nothing when `[websub] callback` is empty."""
    cfg = settings.websub
    if not cfg.callback:
        return 0
    with db.session() as s:
        feeds = list(
            s.scalars(
                select(Feed).where(
                    Feed.enabled.is_(True),
                    Feed.websub_hub.is_not(None),
                    # what is to be done next is due: see Feed.websub_expires_at
                    or_(
                        Feed.websub_state.is_(None),
                        Feed.websub_expires_at.is_(None),
                        Feed.websub_expires_at <= now,
                    ),
                )
            )
        )
        asks = []
        for feed in feeds:
            feed.websub_secret = feed.websub_secret or secrets.token_hex(32)
            feed.websub_state = "pending"
            feed.websub_expires_at = now + PENDING_FOR  # when to ask again, unconfirmed
            asks.append(
                (feed.id, feed.websub_hub, feed.websub_topic or feed.url, feed.websub_secret)
            )
    if not asks:
        return 0
    client = make_client(FetchOptions.of(settings.http))
    try:
        for feed_id, hub, topic, secret in asks:
            form = {
                "hub.mode": "subscribe",
                "hub.topic": topic,
                "hub.callback": f"{cfg.callback}/{feed_id}",
                "hub.secret": secret,
                "hub.lease_seconds": str(int(cfg.lease.total_seconds())),
            }
            try:
                r = await client.http.post(str(hub), data=form)
            except Exception as exc:  # a hub down is retried after PENDING_FOR
                log.warning("WebSub hub %s for feed %d: %s", hub, feed_id, exc)
                continue
            if r.status_code >= 300:
                log.warning("WebSub hub %s refused feed %d: HTTP %d", hub, feed_id, r.status_code)
    finally:
        await client.http.aclose()
    return len(asks)


def verify(
    db: Database, feed_id: int, mode: str, topic: str, lease: str | None, now: datetime
) -> bool:
    """A hub asks whether this monitor wants `mode` of `topic` for feed `feed_id`: yes
    only for what it asked (the subscription then runs for the lease the hub grants)."""
    with db.session() as s:
        feed = s.get(Feed, feed_id)
        if feed is None or feed.websub_topic != topic or feed.websub_secret is None:
            return False
        if mode == "subscribe" and feed.websub_state == "pending":
            seconds = int(lease) if lease and lease.isdigit() else 86_400
            feed.websub_state = "active"  # renewed when four fifths of the lease are gone
            feed.websub_expires_at = now + timedelta(seconds=max(60, seconds * 4 // 5))
            log.info("WebSub: feed %s is pushed by %s", feed.url, feed.websub_hub)
            return True
        if mode == "denied":  # asked again a day later
            feed.websub_state, feed.websub_expires_at = "denied", now + timedelta(days=1)
            return True
        return mode == "unsubscribe" and feed.websub_state != "active"


def pushed(
    db: Database, feed_id: int, body: bytes, signature: str | None, content_type: str | None
) -> FetchResult | None:
    """A hub's push as the fetch it stands for, if its signature is the subscription's;
    None for anything else (which the hub is told was received, as WebSub asks)."""
    with db.sessions() as s:
        feed = s.get(Feed, feed_id)
        if feed is None or not feed.websub_secret or feed.websub_state != "active":
            return None
        if not signature_ok(feed.websub_secret, body, signature):
            log.warning("WebSub: a push for feed %s had a wrong signature: ignored", feed.url)
            return None
        return FetchResult(
            feed_id,
            feed.permanent_url or feed.url,
            200,
            body,
            hashlib.sha256(body).hexdigest(),
            content_type,
        )
