"""Feeds on the desk: add one (after a test fetch that says what it found), pause, resume
and remove those added by hand, OPML import and export; and the same in the JSON API.
Feeds of the config file are shown, and changed in the file (store.OwnedByConfig)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from monitor import store
from monitor.config import FeedConfig, Settings
from monitor.db import Database
from monitor.fetch import FetchOptions
from monitor.models import Entry, Feed
from monitor.opml import OpmlError, OpmlFeed, parse_opml, render_opml
from monitor.probe import probe
from monitor.store import desk
from monitor.web.actions import check_form, csrf
from monitor.web.deps import DbSession
from monitor.web.pages import templates

router = APIRouter()
MAX_OPML = 2 * 2**20


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def feeds_page(request: Request, notice: str | None = None, status: int = 200) -> Response:
    with _db(request).sessions() as s:
        rows = desk.feeds(s)
        return templates.TemplateResponse(
            request,
            "feeds.html",
            {"rows": rows, "csrf": csrf(request), "notice": notice},
            status_code=status,
        )


def _config(url: str, name: str | None, interval: str | None) -> FeedConfig:
    try:
        return FeedConfig(url=url.strip(), name=name or None, interval=interval or None)
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise ValueError(reasons) from None


def add(request: Request, cfg: FeedConfig) -> tuple[int | None, str]:
    """Add `cfg` by hand and look at it once: (its id or None if present, what was seen)."""
    with _db(request).session() as s:
        if not store.add_feeds(s, [cfg], "web", datetime.now(UTC)):
            return None, f"already watched: {cfg.url}"
        feed_id = s.scalar(select(Feed.id).where(Feed.url == cfg.url))
    seen = asyncio.run(probe(cfg.url, FetchOptions.of(_settings(request).http)))
    return feed_id, f"added {cfg.url}: {seen}"


@router.post("/feeds", response_class=HTMLResponse)
def add_form(
    request: Request,
    csrf: Annotated[str, Form()],
    url: Annotated[str, Form(max_length=2048)],
    name: Annotated[str, Form(max_length=300)] = "",
    interval: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    check_form(request, csrf)
    try:
        cfg = _config(url, name, interval)
    except ValueError as exc:
        return feeds_page(request, f"not added: {exc}", 422)
    feed_id, said = add(request, cfg)
    return feeds_page(request, said, 201 if feed_id else 409)


def _manual(s: Session, feed_id: int) -> Feed:
    """A feed added by hand, or the HTTP error that says why it cannot be changed here."""
    try:
        feed = store.manual_feed(s, feed_id)
    except store.OwnedByConfig as exc:
        raise HTTPException(409, str(exc)) from None
    if feed is None:
        raise HTTPException(404, "no such feed")
    return feed


def _paused(request: Request, feed_id: int, paused: bool) -> Feed:
    with _db(request).session() as s:
        feed = _manual(s, feed_id)
        feed.enabled = not paused
        if not paused:
            feed.next_poll_at = datetime.now(UTC)  # polled at the next tick
        s.flush()
        s.expunge(feed)
        return feed


@router.post("/feeds/{feed_id}/pause")
def pause_form(request: Request, feed_id: int, csrf: Annotated[str, Form()]) -> Response:
    check_form(request, csrf)
    _paused(request, feed_id, True)
    return RedirectResponse("/feeds", status_code=303)


@router.post("/feeds/{feed_id}/resume")
def resume_form(request: Request, feed_id: int, csrf: Annotated[str, Form()]) -> Response:
    check_form(request, csrf)
    _paused(request, feed_id, False)
    return RedirectResponse("/feeds", status_code=303)


@router.get("/feeds/{feed_id}/remove", response_class=HTMLResponse)
def remove_page(request: Request, feed_id: int, s: DbSession) -> Response:
    """The question before removing: a feed goes with every entry it brought."""
    feed = _manual(s, feed_id)
    entries = s.scalar(select(func.count()).where(Entry.feed_id == feed_id)) or 0
    context = {"feed": feed, "entries": entries, "csrf": csrf(request)}
    return templates.TemplateResponse(request, "remove_feed.html", context)


def _remove(request: Request, feed_id: int) -> str:
    with _db(request).session() as s:
        feed = _manual(s, feed_id)
        url = feed.url
        s.delete(feed)
    return url


@router.post("/feeds/{feed_id}/remove")
def remove_form(request: Request, feed_id: int, csrf: Annotated[str, Form()]) -> Response:
    check_form(request, csrf)
    return feeds_page(request, f"removed {_remove(request, feed_id)} and its entries")


@router.get("/feeds.opml")
def export_opml(s: DbSession) -> Response:
    """Every enabled feed as OPML, for another reader."""
    rows = store.feeds_in_order(s, enabled_only=True)
    body = render_opml([OpmlFeed(f.url, f.name) for f in rows])
    return Response(
        body,
        media_type="text/x-opml",
        headers={"Content-Disposition": 'attachment; filename="monitor-feeds.opml"'},
    )


def import_feeds(request: Request, data: bytes) -> str:
    try:
        found = parse_opml(data)
    except OpmlError as exc:
        raise ValueError(f"not imported: {exc}") from None
    wanted, skipped = [], []
    for f in found:
        try:
            wanted.append(FeedConfig(url=f.url, name=f.name))
        except ValueError:
            skipped.append(f.url)
    with _db(request).session() as s:
        added = len(store.add_feeds(s, wanted, "web", datetime.now(UTC)))
    bad = f" (not http(s) feed addresses: {', '.join(skipped[:5])})" if skipped else ""
    return f"{len(found)} feeds, {added} added, {len(found) - added} skipped{bad}"


@router.post("/feeds/import", response_class=HTMLResponse)
async def import_form(request: Request, opml: UploadFile, csrf: Annotated[str, Form()]) -> Response:
    check_form(request, csrf)
    data = await opml.read(MAX_OPML + 1)
    if len(data) > MAX_OPML:
        return feeds_page(request, "not imported: the file is larger than 2 MiB", 413)
    from starlette.concurrency import run_in_threadpool

    try:
        said = await run_in_threadpool(import_feeds, request, data)
    except ValueError as exc:
        return await run_in_threadpool(feeds_page, request, str(exc), 422)
    return await run_in_threadpool(feeds_page, request, said)


class FeedIn(BaseModel):
    url: str
    name: str | None = None
    interval: str | None = None


class FeedAdded(BaseModel):
    id: int
    url: str
    found: str  # what the test fetch saw


class FeedState(BaseModel):
    id: int
    url: str
    enabled: bool


@router.post("/api/feeds", status_code=201, tags=["api"])
def api_add(request: Request, body: FeedIn) -> FeedAdded:
    """Add a feed by hand, after one test fetch (reported in `found`)."""
    try:
        cfg = _config(body.url, body.name, body.interval)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    feed_id, said = add(request, cfg)
    if feed_id is None:
        raise HTTPException(409, said)
    return FeedAdded(id=feed_id, url=cfg.url, found=said)


@router.post("/api/feeds/{feed_id}/pause", tags=["api"])
def api_pause(request: Request, feed_id: int) -> FeedState:
    f = _paused(request, feed_id, True)
    return FeedState(id=f.id, url=f.url, enabled=f.enabled)


@router.post("/api/feeds/{feed_id}/resume", tags=["api"])
def api_resume(request: Request, feed_id: int) -> FeedState:
    f = _paused(request, feed_id, False)
    return FeedState(id=f.id, url=f.url, enabled=f.enabled)


@router.delete("/api/feeds/{feed_id}", status_code=204, tags=["api"])
def api_remove(request: Request, feed_id: int) -> Response:
    _remove(request, feed_id)
    return Response(status_code=204)
