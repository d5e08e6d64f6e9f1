"""Developments, and the lock that serializes placing entries in them."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from monitor.models import Entry

# Any constant unique to this application: the key of the PostgreSQL advisory lock that
# serializes clustering, so two workers never open two developments for one story.
CLUSTER_LOCK_KEY = 0x6D6F6E69


def lock_clustering(s: Session) -> None:
    """Serialize clustering across workers (PostgreSQL); SQLite has one writer anyway."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLUSTER_LOCK_KEY})


def development_size(s: Session, dev_id: int) -> int:
    return (
        s.scalar(select(func.count()).select_from(Entry).where(Entry.development_id == dev_id)) or 0
    )


def development_entries_of(s: Session, dev_ids: Iterable[int]) -> list[Entry]:
    """The reports of several developments, by development, each's in the order they
    were first seen."""
    return list(
        s.scalars(
            select(Entry)
            .where(Entry.development_id.in_(set(dev_ids)))
            .order_by(Entry.development_id, Entry.first_seen_at, Entry.id)
        )
    )


def development_entries(s: Session, dev_id: int) -> list[Entry]:
    """One development's reports, in the order they were first seen."""
    return development_entries_of(s, (dev_id,))
