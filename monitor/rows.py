"""New entries encoded as database rows, ready for one bulk insert. Pure: no I/O.

Most entries of a general news feed match no topic: they are stored only so that the next
poll knows them, and counted as background for clustering's word weights. In a large poll
they are most of the rows written, so they bypass the ORM: a parser worker lays out their
column values here and the storing process encodes the datetimes for its database (as the
ORM's column type would) and hands the tuples to the driver's `executemany`. Nothing here
needs SQLAlchemy or the database dialect, so workers import neither.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from monitor import jsoncodec
from monitor.cluster import Idf, features_to_json, pack_keys

if TYPE_CHECKING:
    from monitor.cluster import Features
    from monitor.match import MatchResult
    from monitor.normalize import Article

# An entry's columns that come from its article, in the order of `article_row`: the one
# mapping from an Article to a row (the ORM path sets them by name, the bulk path inserts
# them by position). tests/test_store.py checks them against the Entry model.
ARTICLE_COLUMNS = (
    "guid",
    "url",
    "canonical_url",
    "title",
    "summary_html",
    "text",
    "language",
    "author",
    "content_hash",
    "published_at",
    "updated_at",
    "date_estimated",
)
# A bulk row: the article's columns, then what matching and clustering decided.
ENTRY_COLUMNS = (
    *ARTICLE_COLUMNS,
    "revision",
    "score",
    "relevant",
    "cluster_features",
    "join_reason",
)
# Filled in by the storing side, in front of each row.
ADDED_COLUMNS = ("feed_id", "first_seen_at", "last_seen_at")
# Positions of the UTC datetimes in a bulk row: encoded for the database when inserted.
DATETIME_POSITIONS = tuple(ENTRY_COLUMNS.index(c) for c in ("published_at", "updated_at"))


def article_row(a: Article) -> tuple[Any, ...]:
    """The article's column values, in ARTICLE_COLUMNS order."""
    return (
        a.guid,
        a.url,
        a.canonical_url,
        a.title,
        a.summary_html,
        a.text,
        a.language,
        a.author,
        a.content_hash,
        a.published_at,
        a.updated_at,
        a.date_estimated,
    )


def encode_datetime(dialect: str, value: datetime | None) -> Any:
    """A UTC instant as models.UTCDateTime stores it: on SQLite naive UTC text in
    SQLAlchemy's format (which SQL comparisons rely on, being string comparisons there),
    elsewhere the aware datetime for the driver to adapt."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("naive datetime given to a UTC column")
    value = value.astimezone(UTC)
    if dialect != "sqlite":
        return value
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}"
    )


@dataclass(frozen=True, slots=True)
class QuietRows:
    """New entries no topic rule holds for, as parallel lists (one pickled object per
    document, not one per entry): guid, publication date, row (ENTRY_COLUMNS order, its
    datetimes still aware: the storing side encodes them for its database) and the keys
    clustering's word weights count."""

    guids: list[str] = field(default_factory=list)
    published: list[datetime] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)  # each article's, packed (cluster.pack_keys)

    def add(self, a: Article, result: MatchResult, f: Features) -> None:
        self.guids.append(a.guid)
        self.published.append(a.published_at)
        self.rows.append(
            (
                *article_row(a),
                1,
                result.best,
                result.relevant,
                jsoncodec.dumps(features_to_json(f)),
                "off-topic",
            )
        )
        self.keys.append(pack_keys(Idf.keys(f)))
