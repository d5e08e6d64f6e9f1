"""Alerts and their deliveries: the outbox that delivery reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor.leases import claimable
from monitor.models import Alert, Delivery, Development


def add_alert(
    s: Session,
    dev: Development,
    public_id: str,
    routes: Sequence[tuple[str, str, datetime]],
    now: datetime,
    payload: dict[str, Any] | None = None,
) -> Alert:
    """The outbox rows (channel, status, first attempt), written in the caller's
    transaction with the development; `payload`: what the alert says that is decided
    now (its topics), kept so that delivering it needs no matcher."""
    alert = Alert(
        public_id=public_id,
        development_id=dev.id,
        created_at=now,
        kind="development",
        payload=payload or {},
    )
    for name, status, at in routes:
        alert.deliveries.append(
            Delivery(channel=name, status=status, next_attempt_at=at, created_at=now)
        )
    s.add(alert)
    return alert


def instant_sent_since(s: Session, channel: str, since: datetime) -> int:
    """Deliveries a channel got outside digests since `since` (for its rate limit)."""
    q = (
        select(func.count())
        .select_from(Delivery)
        .where(
            Delivery.channel == channel,
            Delivery.created_at >= since,
            Delivery.status.in_(("pending", "delivered", "dead")),
            Delivery.digest_alert_id.is_(None),
            Delivery.alert.has(Alert.kind == "development"),
        )
    )
    return int(s.scalar(q) or 0)


def last_digest_fire(s: Session, channel: str) -> datetime | None:
    keys = s.scalars(
        select(Alert.digest_key)
        .where(Alert.digest_key.like(f"{channel}@%"))
        .order_by(Alert.id.desc())
        .limit(1)
    )
    key = next(iter(keys), None)
    return datetime.fromisoformat(key.split("@", 1)[1]) if key else None


def waiting(s: Session, channel: str, until: datetime | None = None) -> list[Delivery]:
    q = select(Delivery).where(Delivery.channel == channel, Delivery.status == "waiting")
    if until is not None:
        q = q.where(Delivery.created_at <= until)
    return list(s.scalars(q.order_by(Delivery.created_at, Delivery.id)))


def claim_deliveries(
    s: Session,
    now: datetime,
    owner: str,
    lease: timedelta,
    stale: Callable[[str], bool] = lambda owner: False,
    limit: int = 100,
) -> list[Delivery]:
    """Lease due deliveries; a lease held by another owner is skipped unless `stale` says
    that owner is dead (leases.py)."""
    q = select(Delivery).where(
        Delivery.status == "pending",
        Delivery.next_attempt_at <= now,
        claimable(s, Delivery, owner, now, stale),
    )
    q = q.order_by(Delivery.next_attempt_at, Delivery.id).limit(limit)
    rows = list(s.scalars(q.with_for_update(skip_locked=True)))
    for d in rows:
        d.lease_owner = owner
        d.lease_until = now + lease
    return rows


def count_due(s: Session, now: datetime) -> int:
    q = (
        select(func.count())
        .select_from(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
    )
    return int(s.scalar(q) or 0)


def retry_deliveries(s: Session, alert: Alert, now: datetime) -> int:
    """Make an alert's undelivered deliveries (dead letters too) due now; how many."""
    again = [d for d in alert.deliveries if d.status != "delivered"]
    for d in again:
        d.status, d.attempts, d.next_attempt_at = "pending", 0, now
        d.lease_owner = d.lease_until = None
    return len(again)


def recent_alerts(s: Session, limit: int, failed: bool = False) -> list[Alert]:
    q = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
    if failed:
        q = q.where(Alert.deliveries.any(Delivery.status == "dead"))
    return list(s.scalars(q.limit(limit)))


def alert_of(s: Session, dev_id: int) -> Alert | None:
    return s.scalar(select(Alert).where(Alert.development_id == dev_id))
