"""What an editor does on the desk: feedback on a development, and taking it back; a
dead letter sent again. Each form carries the reader's CSRF token (auth.py: a cross-site
page cannot read it, so cannot post for the reader); the JSON API's twins take JSON
only, which a cross-site form cannot send. Only editors get here (the guard in
`create_app` turns a viewer's POST away)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from monitor import store
from monitor.config import Settings
from monitor.db import Database
from monitor.feedback import Kind, Reason
from monitor.models import Alert, Development, Feedback
from monitor.store import feedback as given
from monitor.web.auth import Who, form_ok

router = APIRouter()


def csrf(request: Request) -> str:
    """The token this reader's forms carry."""
    who: Who | None = getattr(request.state, "who", None)
    return who.csrf if who else ""


def check_form(request: Request, sent: str) -> None:
    if not form_ok(request, sent):
        raise HTTPException(403, "this form is out of date or not the desk's: reload the page")


def _db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def _give(
    s: Session, dev_id: int, kind: Kind, reason: str, other: int | None, entry: int | None
) -> Feedback:
    """One piece of feedback, applied at once; ValueError says what is wrong with it."""
    now = datetime.now(UTC)
    if kind == "same-as":
        if other is None:
            raise ValueError("same as which development? give its number")
        return given.same_as(s, dev_id, other, now)
    if kind == "not-part":
        if entry is None:
            raise ValueError("which report is not part of it? give its entry number")
        return given.not_part(s, dev_id, entry, now)
    return given.not_relevant(s, dev_id, reason, now)


@router.post("/developments/{dev_id}/feedback")
def give(
    request: Request,
    dev_id: int,
    csrf: Annotated[str, Form()],
    kind: Annotated[Kind, Form()] = "not-relevant",
    reason: Annotated[str, Form()] = "other",
    other: Annotated[int | None, Form()] = None,
    entry: Annotated[int | None, Form()] = None,
) -> RedirectResponse:
    check_form(request, csrf)
    with _db(request).session() as s:
        try:
            _give(s, dev_id, kind, reason, other, entry)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    back = other if kind == "same-as" and other is not None else dev_id
    return RedirectResponse(f"/developments/{back}", status_code=303)


def topic_titles(request: Request) -> dict[str, str]:
    """The active profile's topics, id to title (read once per process)."""
    titles: dict[str, str] | None = getattr(request.app.state, "topic_titles", None)
    if titles is None:
        from monitor.profile import load_profile

        settings: Settings = request.app.state.settings
        titles = {t.id: t.title for t in load_profile(settings.matching.topics).topics}
        request.app.state.topic_titles = titles
    return titles


def _should_alert(request: Request, s: Session, entry_id: int, topic: str) -> Feedback:
    """The reader's "should have alerted", applied: the alert written now (the service's
    next delivery tick sends it), the lesson kept."""
    from monitor.alerts import TopicRef
    from monitor.outbox import Outbox

    titles = topic_titles(request)
    if topic not in titles:
        raise ValueError(f"topic must be one of {', '.join(titles)}")
    now = datetime.now(UTC)
    fb = given.should_alert(s, entry_id, topic, now)
    dev = s.get(Development, fb.development_id)
    if dev is not None and dev.state != "alerted":
        settings: Settings = request.app.state.settings
        note = f"feedback #{fb.id}: a reader said this should have alerted"
        dev.state, dev.primary_entry_id = "alerted", entry_id
        Outbox(settings, _db(request), lambda: now, "desk").announce(
            s, dev, now, [TopicRef(topic, titles[topic], dev.score, [note])]
        )
    return fb


@router.post("/entries/{entry_id}/should-alert")
def should_alert_form(
    request: Request, entry_id: int, csrf: Annotated[str, Form()], topic: Annotated[str, Form()]
) -> RedirectResponse:
    check_form(request, csrf)
    with _db(request).session() as s:
        try:
            fb = _should_alert(request, s, entry_id, topic)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        back = fb.development_id
    return RedirectResponse(f"/developments/{back}", status_code=303)


@router.post("/feedback/{feedback_id}/undo")
def undo(request: Request, feedback_id: int, csrf: Annotated[str, Form()]) -> RedirectResponse:
    check_form(request, csrf)
    with _db(request).session() as s:
        fb = given.undo(s, feedback_id, datetime.now(UTC))
        if fb is None:
            raise HTTPException(404, "no such feedback")
        back = f"/developments/{fb.development_id}" if fb.development_id else "/"
    return RedirectResponse(back, status_code=303)


@router.post("/alerts/{alert_id}/retry")
def retry(request: Request, alert_id: str, csrf: Annotated[str, Form()]) -> RedirectResponse:
    """Make an alert's undelivered deliveries due again (the service sends them at its
    next tick, `monitor deliver` at once)."""
    check_form(request, csrf)
    with _db(request).session() as s:
        alert = store.by_number_or(s, Alert, Alert.public_id, alert_id)
        if alert is None:
            raise HTTPException(404, "no such alert")
        store.retry_deliveries(s, alert, datetime.now(UTC))
    return RedirectResponse("/dead-letters", status_code=303)


class FeedbackIn(BaseModel):
    kind: Kind = "not-relevant"
    reason: Reason = "other"  # of "not-relevant"
    other: int | None = None  # "same-as": the development this one is
    entry_id: int | None = None  # "not-part": the report that is not part of it


class FeedbackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    development_id: int | None
    entry_id: int | None
    reason: str | None
    created_at: datetime
    undone_at: datetime | None


def _out(fb: Feedback) -> FeedbackOut:
    return FeedbackOut.model_validate(fb)


@router.post("/api/developments/{dev_id}/feedback", status_code=201, tags=["api"])
def api_give(request: Request, dev_id: int, body: FeedbackIn) -> FeedbackOut:
    """Feedback on a development, applied at once: "not-relevant" (why: `reason`; reports
    like it score lower), "same-as" `other` (merged into it; reports like the two join),
    "not-part" `entry_id` (split off; reports like the two are held apart)."""
    with _db(request).session() as s:
        try:
            return _out(_give(s, dev_id, body.kind, body.reason, body.other, body.entry_id))
        except ValueError as exc:
            raise HTTPException(404 if "no development" in str(exc) else 422, str(exc)) from None


class ShouldAlertIn(BaseModel):
    topic: str


@router.post("/api/entries/{entry_id}/should-alert", status_code=201, tags=["api"])
def api_should_alert(request: Request, entry_id: int, body: ShouldAlertIn) -> FeedbackOut:
    """An entry the monitor passed over should have alerted on `topic`: its development
    is announced now, and reports like it are held on that topic from now on."""
    with _db(request).session() as s:
        try:
            return _out(_should_alert(request, s, entry_id, body.topic))
        except ValueError as exc:
            raise HTTPException(404 if "no entry" in str(exc) else 422, str(exc)) from None


@router.post("/api/feedback/{feedback_id}/undo", tags=["api"])
def api_undo(request: Request, feedback_id: int) -> FeedbackOut:
    """Take feedback back."""
    with _db(request).session() as s:
        fb = given.undo(s, feedback_id, datetime.now(UTC))
        if fb is None:
            raise HTTPException(404, "no such feedback")
        return _out(fb)


@router.get("/api/developments/{dev_id}/feedback", tags=["api"])
def api_list(request: Request, dev_id: int) -> list[FeedbackOut]:
    with _db(request).sessions() as s:
        return [_out(fb) for fb in given.of_development(s, dev_id)]
