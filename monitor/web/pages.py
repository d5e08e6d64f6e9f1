"""The desk's HTML pages: developments (filtered, paged, charted), one development, the
feeds, dead letters, search. Server-rendered; every value escaped by Jinja2."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from monitor import store
from monitor.feedback import REASONS
from monitor.store import desk
from monitor.store import feedback as given
from monitor.store import search as searching
from monitor.web.actions import csrf, topic_titles
from monitor.web.chart import chart
from monitor.web.deps import Config, DbSession, DevFilters, Page

router = APIRouter()
CHART_DAYS = 90
# The filters' choices (outlets, languages, topics) change rarely and cost a scan of a
# large database: each process keeps them this long.
LISTS_TTL = 60.0
templates = Jinja2Templates(directory=str(resources.files("monitor.web") / "templates"))
templates.env.filters["when"] = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else "—"
templates.env.filters["safe_url"] = lambda u: u if _web_url(u) else None


def _web_url(url: Any) -> bool:
    """Only http(s) links are links: a feed's `javascript:` or `data:` stays text."""
    return isinstance(url, str) and url.lower().startswith(("http://", "https://"))


@router.get("/", response_class=HTMLResponse)
def developments_page(
    request: Request, f: DevFilters, s: DbSession, cfg: Config, page: Page = 1
) -> HTMLResponse:
    size = cfg.web.page_size
    rows, total = desk.developments(s, f, page, size)
    query = {k: v for k, v in request.query_params.items() if k != "page" and v}
    pages = max(1, -(-total // size))
    charted = f
    if f.since is None:  # the chart's default: the last CHART_DAYS days of what is chosen
        last = f.until or desk.latest(s, f)
        if last is not None:
            charted = replace(f, since=last - timedelta(days=CHART_DAYS - 1))
    lists = _lists(request, s)
    return templates.TemplateResponse(
        request,
        "developments.html",
        {
            "rows": rows,
            "total": total,
            "page": page,
            "pages": pages,
            "f": f,
            "query": query,
            "link": lambda **kw: "?" + urlencode({**query, **kw}),
            "chart": chart(desk.per_day(s, charted)),
            "charted": charted,
            **lists,
        },
    )


@dataclass(frozen=True)
class Why:
    """Why a report is with the earlier ones: how likely the join model found it, what
    moved that most, and the earlier report it is most like, with what the two share."""

    probability: float
    reasons: str
    like: str  # that report's title
    similarity: float
    shared: str


def why_joined(
    found: desk.DevelopmentPage,
    model_path: Path | None = None,
    neighbours: Sequence[tuple[int, datetime, int | None]] = (),
) -> dict[int, Why]:
    """For each report after the first, the development so far weighed for it (as
    `monitor explain` says it) by the configured join model; `neighbours`, the reports
    in developments around it (store.clustered_between), for the crowd it was placed in."""
    from monitor.cluster import (
        Member,
        compare,
        crowd_of,
        describe,
        document_frequencies,
        features_from_json,
        load_join_model,
        weigh,
    )

    model = load_join_model(model_path)
    feats = [
        (r.entry, features_from_json(r.entry.cluster_features))
        for r in found.reports
        if r.entry.cluster_features
    ]
    idf = document_frequencies([f for _, f in feats])
    out: dict[int, Why] = {}
    for i, (entry, mine) in enumerate(feats):
        if i == 0:
            continue
        earlier = [
            Member(e.id, 0, e.canonical_url, e.content_hash, e.published_at, f)
            for e, f in feats[:i]
        ]
        crowd = crowd_of(entry.published_at, ((t, d) for i, t, d in neighbours if i < entry.id))
        weighed = weigh(mine, entry.published_at, {0: earlier}, idf, model, crowd=crowd)
        c, other = max(
            ((compare(mine, f, idf), e) for e, f in feats[:i]), key=lambda pair: pair[0].similarity
        )
        out[entry.id] = Why(
            weighed[0].probability if weighed else 0.0,
            describe(weighed[0].reasons(model, 3)) if weighed else "reads too unlike them",
            other.title,
            c.similarity,
            c.shared(),
        )
    return out


def _lists(request: Request, s: Session) -> dict[str, Any]:
    cached: tuple[float, dict[str, Any]] | None = getattr(request.app.state, "lists", None)
    if cached is None or time.monotonic() - cached[0] > LISTS_TTL:
        lists = {
            "outlets": desk.outlets(s),
            "languages": desk.languages(s),
            "topics": desk.topics(s),
        }
        cached = (time.monotonic(), lists)
        request.app.state.lists = cached
    return cached[1]


def around(s: Session, found: desk.DevelopmentPage) -> list[tuple[int, datetime, int | None]]:
    """The reports in developments published near this one's (its crowd)."""
    from monitor.cluster import CROWD

    times = [r.entry.published_at for r in found.reports]
    if not times:
        return []
    return store.clustered_between(s, min(times) - CROWD, max(times) + CROWD)


@router.get("/developments/{dev_id}", response_class=HTMLResponse)
def development_page(request: Request, dev_id: int, s: DbSession) -> HTMLResponse:
    found = desk.development(s, dev_id)
    if found is None:
        raise HTTPException(404, "no such development")
    context = {
        "d": found,
        "why": why_joined(found, request.app.state.settings.matching.join_model, around(s, found)),
        "feedback": given.of_development(s, dev_id),
        "reasons": REASONS,
        "csrf": csrf(request),
        "topic_titles": topic_titles(request),
    }
    return templates.TemplateResponse(request, "development.html", context)


@router.get("/feeds", response_class=HTMLResponse)
def feeds_page(request: Request, s: DbSession) -> HTMLResponse:
    context = {"rows": desk.feeds(s), "csrf": csrf(request), "notice": None}
    return templates.TemplateResponse(request, "feeds.html", context)


@router.get("/dead-letters", response_class=HTMLResponse)
def dead_letters_page(request: Request, s: DbSession) -> HTMLResponse:
    """Alerts with a delivery that gave up, newest first, each with a retry button."""
    alerts = store.recent_alerts(s, 200, failed=True)
    context = {"alerts": alerts, "csrf": csrf(request)}
    return templates.TemplateResponse(request, "dead.html", context)


@router.get("/search", response_class=HTMLResponse)
def search_page(
    request: Request,
    s: DbSession,
    cfg: Config,
    q: Annotated[str, Query(max_length=200)] = "",
    page: Page = 1,
) -> HTMLResponse:
    """Stored entries with every word of `q`, on topic or not, newest first."""
    size = cfg.web.page_size
    found = searching.search(s, q, page, size)
    context = {
        "q": q,
        "found": found,
        "page": page,
        "pages": max(1, -(-found.total // size)),
        "backlog": searching.backlog(s),
        "csrf": csrf(request),
        "topic_titles": topic_titles(request),
        "link": lambda **kw: "?" + urlencode({"q": q, **kw}),
    }
    return templates.TemplateResponse(request, "search.html", context)
