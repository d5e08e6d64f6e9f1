"""The database schema as SQLAlchemy 2.0 typed models. Alembic migrations create it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so store naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


# Entries stored on topic whose development is decided at the end of their poll.
PENDING = "pending"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class Feed(Base):
    __tablename__ = "feeds"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(2048), unique=True)
    name: Mapped[str | None] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    interval_seconds: Mapped[int] = mapped_column(Integer, default=600)
    # No interval configured: the interval follows the feed's publishing rate.
    adaptive: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    # When the feed-health alert for the current run of failures went out.
    health_alerted_at: Mapped[datetime | None]
    origin: Mapped[str] = mapped_column(String(20), default="config")
    # HTTP validators and the last body's hash: unchanged feeds are neither re-sent nor re-parsed.
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    body_hash: Mapped[str | None] = mapped_column(String(64))
    permanent_url: Mapped[str | None] = mapped_column(String(2048))
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # errors.KINDS: what kind of failure last_error is, for machines (health, the web).
    error_kind: Mapped[str | None] = mapped_column(String(20))
    error_count: Mapped[int] = mapped_column(Integer, default=0)
    first_polled_at: Mapped[datetime | None]
    last_polled_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    next_poll_at: Mapped[datetime | None] = mapped_column(index=True)
    # Lease: the worker that claimed the feed, and until when the claim holds.
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # WebSub (websub.py): the hub the feed names and the address it calls its own; this
    # monitor's subscription there: its secret, its state ("pending" until the hub
    # confirms it, "active", "denied"), and when the next step is due (`expires_at`:
    # asking again if unconfirmed, renewing at four fifths of the lease, retrying a
    # refusal a day later).
    websub_hub: Mapped[str | None] = mapped_column(String(2048))
    websub_topic: Mapped[str | None] = mapped_column(String(2048))
    websub_secret: Mapped[str | None] = mapped_column(String(64))
    websub_state: Mapped[str | None] = mapped_column(String(20))
    websub_expires_at: Mapped[datetime | None]


class Development(Base):
    """A news event: the entries of every outlet that report it."""

    __tablename__ = "developments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    title: Mapped[str] = mapped_column(Text)
    # The entry that first reported it (a plain id: entries reference developments, not back).
    primary_entry_id: Mapped[int | None] = mapped_column(Integer)
    topics: Mapped[list[Any]] = mapped_column(default=list)
    # The languages of its reports, sorted: what the desk's language filter reads.
    languages: Mapped[list[Any]] = mapped_column(default=list, server_default="[]")
    score: Mapped[float] = mapped_column(Float, default=0.0)
    # quiet: not (yet) on topic; alerted: announced once; history: first seen as backfill,
    # so it is known (follow-ups join it) but never announced.
    state: Mapped[str] = mapped_column(String(20), default="quiet")
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    event_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Entry(Base):
    __tablename__ = "entries"
    __table_args__ = (
        UniqueConstraint("feed_id", "guid"),
        Index("ix_entries_published_at", "published_at"),
        # Partial: only the pending entries (WHERE join_reason = 'pending'), as migration
        # 0005 makes it. Not said here: naming `sqlite_where` and `postgresql_where`
        # loaded both dialects in every command, 25 ms of each start on SQLite; the
        # migration tests check the condition in the database.
        Index("ix_entries_pending", "published_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    feed_id: Mapped[int] = mapped_column(ForeignKey("feeds.id", ondelete="CASCADE"))
    guid: Mapped[str] = mapped_column(String(1024))
    url: Mapped[str | None] = mapped_column(String(2048))
    canonical_url: Mapped[str | None] = mapped_column(String(2048), index=True)
    title: Mapped[str] = mapped_column(Text, default="")
    summary_html: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    language: Mapped[str | None] = mapped_column(String(16))
    author: Mapped[str | None] = mapped_column(String(300))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    published_at: Mapped[datetime]
    updated_at: Mapped[datetime | None]
    date_estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    score: Mapped[float] = mapped_column(Float, default=0.0)
    relevant: Mapped[bool] = mapped_column(Boolean, default=False)
    # What clustering compares (cluster.Features as JSON), so a new process rebuilds its
    # index without re-matching every recent entry.
    cluster_features: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Why it is (not) in a development: "new", "same-url", "same-content", "similar",
    # "update", "off-topic"; "pending" until the end of the poll that stored it places it.
    join_reason: Mapped[str | None] = mapped_column(String(40))
    development_id: Mapped[int | None] = mapped_column(
        ForeignKey("developments.id", ondelete="SET NULL"), index=True
    )

    feed: Mapped[Feed] = relationship()
    matches: Mapped[list[TopicMatch]] = relationship(
        back_populates="entry", cascade="all, delete-orphan"
    )


class TopicMatch(Base):
    __tablename__ = "topic_matches"
    __table_args__ = (UniqueConstraint("entry_id", "topic"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("entries.id", ondelete="CASCADE"))
    topic: Mapped[str] = mapped_column(String(100))
    score: Mapped[float] = mapped_column(Float)
    evidence: Mapped[list[Any]] = mapped_column(default=list)

    entry: Mapped[Entry] = relationship(back_populates="matches")


class Alert(Base):
    """One announcement of one development; its public id never changes on redelivery."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="development")
    development_id: Mapped[int | None] = mapped_column(
        ForeignKey("developments.id", ondelete="SET NULL"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Digests: one alert per channel and schedule firing; the unique key makes a second
    # worker's attempt to build the same digest fail instead of sending it twice.
    digest_key: Mapped[str | None] = mapped_column(String(300), unique=True)

    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="alert", cascade="all, delete-orphan", foreign_keys="Delivery.alert_id"
    )


class Delivery(Base):
    """The outbox: one row per alert and channel, with its retry state."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("alert_id", "channel"),
        Index("ix_deliveries_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(200))
    # pending → delivered | dead (after the last attempt, or a permanent refusal);
    # waiting (for the channel's next digest) → digested (sent inside digest_alert_id).
    status: Mapped[str] = mapped_column(String(20), default="pending")
    digest_alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime | None] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_until: Mapped[datetime | None]

    alert: Mapped[Alert] = relationship(back_populates="deliveries", foreign_keys=[alert_id])


class Feedback(Base):
    """What a reader said of a development or an entry, kept (and undoable): applied to
    the database when given, and taught to the matcher from then on (feedback.py)."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "not-relevant" (of a development); the kinds to come: "same-as", "not-part",
    # "should-alert".
    kind: Mapped[str] = mapped_column(String(20))
    development_id: Mapped[int | None] = mapped_column(
        ForeignKey("developments.id", ondelete="SET NULL"), index=True
    )
    entry_id: Mapped[int | None] = mapped_column(ForeignKey("entries.id", ondelete="SET NULL"))
    reason: Mapped[str | None] = mapped_column(String(20))  # feedback.REASONS
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    undone_at: Mapped[datetime | None]
    # What teaching and undoing need, kept when the entries themselves are deleted:
    # "bag" (the reports' words, feedback.fingerprint) and "state" (the development's
    # state before).
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebSession(Base):
    """A reader signed in to the desk. The cookie holds a random token; only its SHA-256
    is stored, so a copy of the database signs no one in."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    user: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(10))  # "viewer" | "editor"
    csrf: Mapped[str] = mapped_column(String(64))  # what this session's forms carry
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]


class SearchState(Base):
    """How far the full-text index of entries has caught up (store/search.py): entries
    with a greater id are not searchable yet. The index itself (SQLite FTS5 table
    `entries_fts`, PostgreSQL `entry_search`) is dialect-specific and made by migration
    0009 alone (SEARCH_TABLES)."""

    __tablename__ = "search_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    indexed_upto: Mapped[int] = mapped_column(Integer, default=0)


# Tables of the search index that no model declares (they differ by dialect): schema
# comparisons leave them out; and an index that differs by dialect (migration 0010).
SEARCH_TABLES = frozenset({"entries_fts", "entry_search"})
DIALECT_INDEXES = frozenset({"ix_developments_charted"})


def declared(name: str | None, type_: str, _parents: object = None) -> bool:
    """Whether a schema object is the models' and not one of the dialect-specific ones
    of migrations 0009–0010 (FTS5 keeps shadow tables beside its own: entries_fts_data,
    _idx, …): Alembic's include_name."""
    if type_ == "index":
        return name not in DIALECT_INDEXES
    if type_ != "table" or not name:
        return True
    return name not in SEARCH_TABLES and not name.startswith("entries_fts_")
