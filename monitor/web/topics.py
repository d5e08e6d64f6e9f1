"""The topics on the desk: the active profile, readable; and a draft (pasted, from
`monitor topics derive` or edited) previewed on stored history: which of the last days'
entries it would hold on topic, beside what the active profile did."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from monitor.config import Settings
from monitor.db import Database
from monitor.models import Entry
from monitor.web.actions import check_form, csrf
from monitor.web.pages import templates

router = APIRouter()
# Entries a preview reads at most (newest first): matching costs ~0.2 ms an entry.
PREVIEW_LIMIT = 5000
MAX_DRAFT = 200_000


def active_text(settings: Settings) -> str:
    """The active profile's TOML, as written."""
    path = settings.matching.topics
    if path is None:
        return resources.files("monitor").joinpath("data/topics.toml").read_text("utf-8")
    return path.read_text("utf-8")


def _profile_view(request: Request) -> dict[str, object]:
    from monitor.profile import load_profile

    settings: Settings = request.app.state.settings
    profile = load_profile(settings.matching.topics)
    concepts: dict[str, list[str]] = {}
    for term in profile.terms:
        concepts.setdefault(term.concept, []).append(term.key)
    return {
        "profile": profile,
        "threshold": settings.matching.threshold or profile.threshold,
        "concepts": sorted(concepts.items()),
    }


@router.get("/topics", response_class=HTMLResponse)
def topics_page(request: Request) -> Response:
    settings: Settings = request.app.state.settings
    context = {
        **_profile_view(request),
        "draft": active_text(settings),
        "days": 7,
        "csrf": csrf(request),
    }
    return templates.TemplateResponse(request, "topics.html", context)


@router.get("/topics.toml", response_class=PlainTextResponse)
def topics_toml(request: Request) -> str:
    """The active profile as TOML: the start of a draft."""
    return active_text(request.app.state.settings)


@dataclass
class Compared:
    entry: Entry
    active: list[str]  # topics the active profile held it on (as stored)
    draft: list[str]  # topics the draft holds it on


@dataclass
class Preview:
    read: int
    since: datetime
    both: int
    added: list[Compared]  # on topic with the draft only
    dropped: list[Compared]  # on topic with the active profile only


def preview(db: Database, draft_text: str, days: int, threshold: float) -> Preview:
    """The draft against the stored decisions (topics at `threshold`, the active one's)
    on the entries of the `days` days up to the newest stored one (the end of history,
    now in a running monitor, the archive's end in a copy); a ValueError that says what
    is wrong with a draft that is not a profile."""
    from monitor.match import Matcher
    from monitor.profile import parse_profile

    try:
        draft = Matcher(parse_profile(tomllib.loads(draft_text), source="draft"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"the draft is not TOML: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"the draft is not a topic profile: {exc}") from None
    added: list[Compared] = []
    dropped: list[Compared] = []
    both = 0
    with db.sessions() as s:
        newest = s.scalar(select(func.max(Entry.published_at))) or datetime.now(UTC)
        since = newest - timedelta(days=days)
        rows = s.scalars(
            select(Entry)
            .where(Entry.published_at >= since)
            .options(selectinload(Entry.matches), selectinload(Entry.feed))
            .order_by(Entry.published_at.desc())
            .limit(PREVIEW_LIMIT)
        ).all()
        for e in rows:
            held = draft.match(e.title, e.text).topics
            active = (
                sorted(m.topic for m in e.matches if m.score >= threshold) if e.relevant else []
            )
            if held and active:
                both += 1
            elif held:
                added.append(Compared(e, active, held))
            elif active:
                dropped.append(Compared(e, active, held))
        s.expunge_all()
    return Preview(len(rows), since, both, added, dropped)


@router.post("/topics/preview", response_class=HTMLResponse)
def preview_form(
    request: Request,
    csrf_token: Annotated[str, Form(alias="csrf")],
    draft: Annotated[str, Form(max_length=MAX_DRAFT)],
    days: Annotated[int, Form(ge=1, le=90)] = 7,
) -> Response:
    check_form(request, csrf_token)
    context: dict[str, object] = {
        **_profile_view(request),
        "draft": draft,
        "days": days,
        "csrf": csrf(request),
        "limit": PREVIEW_LIMIT,
    }
    try:
        threshold = float(context["threshold"])  # type: ignore[arg-type]
        context["preview"] = preview(request.app.state.db, draft, days, threshold)
        status = 200
    except ValueError as exc:
        context["error"] = str(exc)
        status = 422
    return templates.TemplateResponse(request, "topics.html", context, status_code=status)
