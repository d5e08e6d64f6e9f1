"""Reads and writes of the service's state: the database edge, and its only writer. No
decisions live here (those are decide.py's). One module per domain; everything is
re-exported here, so callers write `store.claim_feeds(...)`.

- feeds.py: feed rows, claiming and leases;
- entries.py: entries and their matches;
- developments.py: developments and the clustering lock;
- outbox.py: alerts and deliveries;
- feedback.py: readers' feedback (given, undone, read back as lessons);
- desk.py: what the web desk reads.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import func, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from monitor.models import Alert, Delivery, Development, Entry, Feed
from monitor.store.developments import (
    CLUSTER_LOCK_KEY,
    development_entries,
    development_entries_of,
    development_size,
    lock_clustering,
)
from monitor.store.entries import (
    apply_article,
    article_values,
    cleanup,
    clustered_between,
    clustered_near,
    entries_by_guid,
    entry_by_url,
    has_pending,
    insert_rows,
    known_hashes,
    last_entry_id,
    new_entry,
    pending_entries,
    recent_entries,
    same_article,
    save_matches,
)
from monitor.store.feeds import (
    CLAIMED,
    OwnedByConfig,
    add_feeds,
    claim_feeds,
    clear_feed_leases,
    feed_health,
    feed_values,
    feeds_by_id,
    feeds_in_order,
    manual_feed,
    release_feed,
    schedules,
    sync_feeds,
    update_feeds,
)
from monitor.store.outbox import (
    add_alert,
    alert_of,
    claim_deliveries,
    count_due,
    instant_sent_since,
    last_digest_fire,
    recent_alerts,
    retry_deliveries,
    waiting,
)

__all__ = [
    "CLAIMED",
    "CLUSTER_LOCK_KEY",
    "OwnedByConfig",
    "add_alert",
    "add_feeds",
    "alert_of",
    "apply_article",
    "article_values",
    "by_number_or",
    "claim_deliveries",
    "claim_feeds",
    "cleanup",
    "clear_feed_leases",
    "clustered_between",
    "clustered_near",
    "count_due",
    "counts",
    "development_entries",
    "development_entries_of",
    "development_size",
    "entries_by_guid",
    "entry_by_url",
    "feed_health",
    "feed_values",
    "feeds_by_id",
    "feeds_in_order",
    "has_pending",
    "insert_rows",
    "instant_sent_since",
    "known_hashes",
    "last_digest_fire",
    "last_entry_id",
    "lock_clustering",
    "manual_feed",
    "new_entry",
    "pending_entries",
    "recent_alerts",
    "recent_entries",
    "release_feed",
    "retry_deliveries",
    "same_article",
    "save_matches",
    "schedules",
    "sync_feeds",
    "update_feeds",
    "waiting",
]

M = TypeVar("M", Feed, Alert)


def by_number_or(s: Session, model: type[M], key: InstrumentedAttribute[str], ref: str) -> M | None:
    """The row whose id is `ref` when it is a number, else whose `key` is `ref`."""
    column = model.id if ref.isdigit() else key
    return s.scalar(select(model).where(column == (int(ref) if ref.isdigit() else ref)))


def counts(s: Session) -> dict[str, Any]:
    """What `monitor status` shows: rows per table, feeds failing, deliveries by state."""

    def n(q: Any) -> int:
        return s.scalar(q) or 0

    return {
        "feeds": n(select(func.count()).select_from(Feed)),
        "failing": n(select(func.count()).select_from(Feed).where(Feed.error_count > 0)),
        "entries": n(select(func.count()).select_from(Entry)),
        "developments": n(select(func.count()).select_from(Development)),
        "alerts": n(select(func.count()).select_from(Alert)),
        "deliveries": dict(
            s.execute(select(Delivery.status, func.count()).group_by(Delivery.status))
            .tuples()
            .all()
        ),
    }
