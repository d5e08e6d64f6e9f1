"""The JSON API (described at /api/openapi.json): developments, one development with its
reports and deliveries, feeds, alerts, search over stored entries (feedback is in
actions.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel

from monitor.store import desk
from monitor.store import search as searching
from monitor.web.deps import DbSession, DevFilters, Page

router = APIRouter(prefix="/api", tags=["api"])


class DevelopmentsOut(BaseModel):
    total: int
    page: int
    size: int
    developments: list[desk.DevelopmentRow]


class MatchOut(BaseModel):
    topic: str
    score: float
    evidence: list[Any]


class ReportOut(BaseModel):
    id: int
    url: str | None
    title: str
    outlet: str
    language: str | None
    published_at: datetime
    join_reason: str | None
    matches: list[MatchOut]


class DeliveryOut(BaseModel):
    channel: str
    status: str
    attempts: int
    delivered_at: datetime | None
    last_error: str | None


class DevelopmentDetailOut(BaseModel):
    development: desk.DevelopmentRow
    reports: list[ReportOut]
    alert_id: str | None
    deliveries: list[DeliveryOut]


class FeedOut(BaseModel):
    id: int
    url: str
    name: str | None
    enabled: bool
    last_status: int | None
    last_error: str | None
    error_kind: str | None
    error_count: int
    last_polled_at: datetime | None
    next_poll_at: datetime | None
    entries: int


class AlertOut(BaseModel):
    id: str
    development_id: int
    title: str
    topics: list[str]
    created_at: datetime


@router.get("/developments", response_model=DevelopmentsOut)
def developments(
    f: DevFilters, s: DbSession, page: Page = 1, size: Annotated[int, Query(ge=1, le=500)] = 50
) -> DevelopmentsOut:
    """Developments, newest first, with the page's filters."""
    rows, total = desk.developments(s, f, page, size)
    return DevelopmentsOut(total=total, page=page, size=size, developments=rows)


@router.get("/developments/{dev_id}", response_model=DevelopmentDetailOut)
def development(dev_id: int, s: DbSession) -> DevelopmentDetailOut:
    """One development: its reports with their topic scores, its alert and deliveries."""
    found = desk.development(s, dev_id)
    if found is None:
        raise HTTPException(404, "no such development")
    (row,) = desk.summaries(s, [found.development])
    return DevelopmentDetailOut(
        development=row,
        reports=[
            ReportOut(
                id=r.entry.id,
                url=r.entry.url,
                title=r.entry.title,
                outlet=r.outlet,
                language=r.entry.language,
                published_at=r.entry.published_at,
                join_reason=r.entry.join_reason,
                matches=[
                    MatchOut(topic=m.topic, score=m.score, evidence=m.evidence) for m in r.matches
                ],
            )
            for r in found.reports
        ],
        alert_id=found.alert.public_id if found.alert else None,
        deliveries=[
            DeliveryOut(
                channel=x.channel,
                status=x.status,
                attempts=x.attempts,
                delivered_at=x.delivered_at,
                last_error=x.last_error,
            )
            for x in found.deliveries
        ],
    )


@router.get("/feeds", response_model=list[FeedOut])
def feeds(s: DbSession) -> list[FeedOut]:
    """Every feed with its health, failing ones first."""
    return [
        FeedOut(
            id=r.feed.id,
            url=r.feed.url,
            name=r.feed.name,
            enabled=r.feed.enabled,
            last_status=r.feed.last_status,
            last_error=r.feed.last_error,
            error_kind=r.feed.error_kind,
            error_count=r.feed.error_count,
            last_polled_at=r.feed.last_polled_at,
            next_poll_at=r.feed.next_poll_at,
            entries=r.entries,
        )
        for r in desk.feeds(s)
    ]


@router.get("/alerts", response_model=list[AlertOut])
def alerts(
    s: DbSession,
    topic: Annotated[str | None, Query(max_length=100)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[AlertOut]:
    """The newest development alerts, optionally of one topic."""
    return [
        AlertOut(
            id=a.public_id,
            development_id=d.id,
            title=d.title,
            topics=list(d.topics),
            created_at=a.created_at,
        )
        for a, d in desk.alerts(s, topic or None, limit)
    ]


class EntryOut(ReportOut):
    text: str
    relevant: bool
    score: float
    development_id: int | None


@router.get("/entries/{entry_id}")
def entry(s: DbSession, entry_id: int) -> EntryOut:
    """One stored entry, on topic or not: its text, its scores and evidence per topic,
    and the development it is in (why: `join_reason`)."""
    from sqlalchemy.orm import selectinload

    from monitor.models import Entry

    e = s.get(Entry, entry_id, options=[selectinload(Entry.matches), selectinload(Entry.feed)])
    if e is None:
        raise HTTPException(404, "no such entry")
    return EntryOut(
        id=e.id,
        url=e.url,
        title=e.title,
        outlet=e.feed.name or e.feed.url,
        language=e.language,
        published_at=e.published_at,
        join_reason=e.join_reason,
        matches=[MatchOut(topic=m.topic, score=m.score, evidence=m.evidence) for m in e.matches],
        text=e.text,
        relevant=e.relevant,
        score=e.score,
        development_id=e.development_id,
    )


class SearchHitOut(BaseModel):
    id: int
    url: str | None
    title: str
    outlet: str
    language: str | None
    published_at: datetime
    relevant: bool
    score: float
    development_id: int | None


class SearchOut(BaseModel):
    total: int
    capped: bool  # more than `total` match
    page: int
    size: int
    not_indexed_yet: int  # entries stored so lately that no search finds them yet
    entries: list[SearchHitOut]


@router.get("/search")
def search_entries(
    s: DbSession,
    q: Annotated[str, Query(max_length=200, description="words, each matched as a prefix")],
    page: Page = 1,
    size: Annotated[int, Query(ge=1, le=200)] = 50,
) -> SearchOut:
    """Stored entries (on topic or not) with every word of `q`, newest first."""
    found = searching.search(s, q, page, size)
    return SearchOut(
        total=found.total,
        capped=found.capped,
        page=page,
        size=size,
        not_indexed_yet=searching.backlog(s),
        entries=[
            SearchHitOut(
                id=e.id,
                url=e.url,
                title=e.title,
                outlet=e.feed.name or e.feed.url,
                language=e.language,
                published_at=e.published_at,
                relevant=e.relevant,
                score=e.score,
                development_id=e.development_id,
            )
            for e in found.entries
        ],
    )
