"""What the web desk and its API read: developments with their reports, outlets,
languages and alert, filtered and paged; one development whole; feeds' health; recent
alerts. Reads only (the rest of store/ writes), each a few indexed queries whatever the
page size, so a page costs the same on a large database as on a small one."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Select, String, cast, func, select
from sqlalchemy.orm import Session, selectinload

from monitor.models import Alert, Delivery, Development, Entry, Feed, TopicMatch

# Development states a reader of the desk means by "on topic" (quiet ones never were).
ON_TOPIC = ("alerted", "history")


@dataclass(frozen=True)
class Filters:
    """What a reader narrowed the developments to; every field optional."""

    topic: str | None = None
    feed_id: int | None = None
    language: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive
    text: str | None = None
    state: str | None = None  # one of ON_TOPIC, "quiet", or None: on topic


@dataclass
class DevelopmentRow:
    """One line of the developments page."""

    id: int
    title: str
    topics: list[str]
    state: str
    score: float
    first_seen_at: datetime
    last_seen_at: datetime
    reports: int = 0
    outlets: int = 0
    languages: list[str] = field(default_factory=list)
    alert_id: str | None = None
    url: str | None = None  # the primary report's


def _filtered(f: Filters) -> Select[Any]:
    q = select(Development)
    if f.state:
        q = q.where(Development.state == f.state)
    else:
        q = q.where(Development.state.in_(ON_TOPIC))
    if f.topic:
        # Topics are a JSON list of ids: its text holds each id in quotes, on every backend.
        q = q.where(cast(Development.topics, String).like(f'%"{_like(f.topic)}"%', escape="\\"))
    if f.since:
        q = q.where(Development.first_seen_at >= _midnight(f.since))
    if f.until:
        q = q.where(Development.first_seen_at < _midnight(f.until) + timedelta(days=1))
    if f.text:
        q = q.where(Development.title.ilike(f"%{_like(f.text)}%", escape="\\"))
    if f.language:  # a JSON list of codes, as topics
        q = q.where(
            cast(Development.languages, String).like(f'%"{_like(f.language)}"%', escape="\\")
        )
    if f.feed_id is not None:
        # Found from the reports' side, through the entries' (feed_id, guid) key.
        reports = select(Entry.development_id).where(
            Entry.feed_id == f.feed_id, Entry.development_id.is_not(None)
        )
        q = q.where(Development.id.in_(reports))
    return q


def developments(
    s: Session, f: Filters, page: int = 1, size: int = 50
) -> tuple[list[DevelopmentRow], int]:
    """One page of developments, newest first, and how many match in all."""
    q = _filtered(f)
    total = s.scalar(select(func.count()).select_from(q.subquery())) or 0
    devs: Sequence[Development] = s.scalars(
        q.order_by(Development.first_seen_at.desc(), Development.id.desc())
        .offset(max(0, page - 1) * size)
        .limit(size)
    ).all()
    return summaries(s, devs), total


def summaries(s: Session, devs: Sequence[Development]) -> list[DevelopmentRow]:
    """The developments page's line of each of `devs`."""
    rows = {
        d.id: DevelopmentRow(
            d.id, d.title, list(d.topics), d.state, d.score, d.first_seen_at, d.last_seen_at
        )
        for d in devs
    }
    if not rows:
        return []
    ids = list(rows)
    dev_id: Any
    language: Any
    for dev_id, reports, outlets in s.execute(
        select(Entry.development_id, func.count(), func.count(Entry.feed_id.distinct()))
        .where(Entry.development_id.in_(ids))
        .group_by(Entry.development_id)
    ):
        rows[dev_id].reports, rows[dev_id].outlets = reports, outlets
    for dev_id, language in s.execute(
        select(Entry.development_id, Entry.language)
        .where(Entry.development_id.in_(ids), Entry.language.is_not(None))
        .distinct()
    ):
        rows[dev_id].languages.append(language)
    for dev_id, public_id in s.execute(
        select(Alert.development_id, Alert.public_id).where(Alert.development_id.in_(ids))
    ):
        rows[dev_id].alert_id = public_id
    primaries = {d.primary_entry_id: d.id for d in devs if d.primary_entry_id is not None}
    for entry_id, url in s.execute(
        select(Entry.id, Entry.url).where(Entry.id.in_(list(primaries)))
    ):
        rows[primaries[entry_id]].url = url
    for row in rows.values():
        row.languages.sort()
    return [rows[d.id] for d in devs]


def per_day(s: Session, f: Filters) -> dict[date, dict[str, int]]:
    """Developments first seen on each day, by topic (one counted under each of its
    topics), over what `f` selects."""
    out: dict[date, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    if s.get_bind().dialect.name == "sqlite":  # stored as ISO text: its first ten letters
        day: Any = func.substr(cast(Development.first_seen_at, String), 1, 10)
    else:
        day = func.to_char(func.timezone("UTC", Development.first_seen_at), "YYYY-MM-DD")
    # Grouped in the database: a year of 100,000 developments is a few thousand groups.
    topics_text = cast(Development.topics, String)
    q = _filtered(f).with_only_columns(day, topics_text, func.count()).group_by(day, topics_text)
    for seen, topics, n in s.execute(q):
        for topic in json.loads(topics or "[]") or ["(none)"]:
            out[date.fromisoformat(seen)][str(topic)] += n
    return {d: dict(counts) for d, counts in sorted(out.items())}


def latest(s: Session, f: Filters) -> date | None:
    """The day the newest development `f` selects was first seen."""
    newest = s.scalar(
        _filtered(f)
        .with_only_columns(Development.first_seen_at)
        .order_by(Development.first_seen_at.desc())
        .limit(1)
    )
    return newest.date() if newest else None


@dataclass
class Report:
    """One entry of a development, as its page shows it."""

    entry: Entry
    outlet: str
    matches: list[TopicMatch]


@dataclass
class DevelopmentPage:
    development: Development
    reports: list[Report]
    alert: Alert | None
    deliveries: list[Delivery]


def development(s: Session, dev_id: int) -> DevelopmentPage | None:
    """A development with its reports (oldest first), their matches, its alert and each
    channel's delivery."""
    dev = s.get(Development, dev_id)
    if dev is None:
        return None
    entries = s.scalars(
        select(Entry)
        .where(Entry.development_id == dev_id)
        .options(selectinload(Entry.matches), selectinload(Entry.feed))
        .order_by(Entry.published_at, Entry.id)
    ).all()
    reports = [
        Report(e, e.feed.name or e.feed.url, sorted(e.matches, key=lambda m: -m.score))
        for e in entries
    ]
    alert = s.scalar(select(Alert).where(Alert.development_id == dev_id))
    deliveries = (
        list(
            s.scalars(
                select(Delivery).where(Delivery.alert_id == alert.id).order_by(Delivery.channel)
            )
        )
        if alert is not None
        else []
    )
    return DevelopmentPage(dev, reports, alert, deliveries)


@dataclass
class FeedRow:
    feed: Feed
    entries: int


def feeds(s: Session) -> list[FeedRow]:
    """Every feed with its entry count, failing ones first, then by name."""
    counts = dict(s.execute(select(Entry.feed_id, func.count()).group_by(Entry.feed_id)).all())
    rows = [FeedRow(f, counts.get(f.id, 0)) for f in s.scalars(select(Feed))]
    rows.sort(key=lambda r: (r.feed.error_count == 0, (r.feed.name or r.feed.url).lower()))
    return rows


def outlets(s: Session) -> list[tuple[int, str]]:
    """(feed id, name) of every feed, for the outlet filter."""
    return [
        (i, name or url)
        for i, name, url in s.execute(select(Feed.id, Feed.name, Feed.url).order_by(Feed.name))
    ]


def topics(s: Session) -> list[str]:
    """Every topic an entry has matched, for the topic filter."""
    return sorted(t for t in s.scalars(select(TopicMatch.topic).distinct()) if t)


def languages(s: Session) -> list[str]:
    """Every language a development's reports are in, for the language filter."""
    found: set[str] = set()
    for codes in s.scalars(select(cast(Development.languages, String)).distinct()):
        found.update(str(c) for c in json.loads(codes or "[]"))
    return sorted(found)


def alerts(s: Session, topic: str | None = None, limit: int = 50) -> list[tuple[Alert, Any]]:
    """The newest development alerts (with their development), optionally of one topic."""
    q = (
        select(Alert, Development)
        .join(Development, Development.id == Alert.development_id)
        .where(Alert.kind == "development")
    )
    if topic:
        q = q.where(cast(Development.topics, String).like(f'%"{_like(topic)}"%', escape="\\"))
    return [(a, d) for a, d in s.execute(q.order_by(Alert.created_at.desc()).limit(limit))]


def _like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


__all__ = [
    "ON_TOPIC",
    "DevelopmentPage",
    "DevelopmentRow",
    "FeedRow",
    "Filters",
    "Report",
    "alerts",
    "development",
    "developments",
    "feeds",
    "languages",
    "latest",
    "outlets",
    "per_day",
    "summaries",
    "topics",
]
