"""What every handler of the desk is given: a database session, the settings, and the
filters a request names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Annotated

from fastapi import Depends, HTTPException, Query, Request
from sqlalchemy.orm import Session

from monitor.config import Settings
from monitor.db import Database
from monitor.store.desk import Filters


def session(request: Request) -> Iterator[Session]:
    """A read-only session for the request (rolled back at its end: the desk writes
    nothing yet)."""
    db: Database = request.app.state.db
    with db.sessions() as s:
        yield s


def settings(request: Request) -> Settings:
    value: Settings = request.app.state.settings
    return value


def filters(
    topic: Annotated[str | None, Query(max_length=100)] = None,
    outlet: Annotated[int | None, Query(ge=1)] = None,
    language: Annotated[str | None, Query(max_length=16)] = None,
    since: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD")] = None,
    until: Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD")] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    state: Annotated[
        str | None, Query(pattern="^(alerted|history|quiet|dismissed|merged)?$")
    ] = None,
) -> Filters:
    """The filters of the developments page and API; an empty field is no filter (the
    page's form sends every field)."""
    return Filters(
        topic=topic or None,
        feed_id=outlet,
        language=language or None,
        since=_day("since", since),
        until=_day("until", until),
        text=(q or "").strip() or None,
        state=state or None,
    )


def _day(name: str, value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name} must be a date, YYYY-MM-DD: got {value!r}") from None


DbSession = Annotated[Session, Depends(session)]
Config = Annotated[Settings, Depends(settings)]
DevFilters = Annotated[Filters, Depends(filters)]
Page = Annotated[int, Query(ge=1, le=100_000)]
