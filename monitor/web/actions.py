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

from monitor import store
from monitor.db import Database
from monitor.feedback import Kind, Reason
from monitor.models import Alert, Feedback
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


@router.post("/developments/{dev_id}/feedback")
def give(
    request: Request,
    dev_id: int,
    reason: Annotated[str, Form()],
    csrf: Annotated[str, Form()],
    kind: Annotated[Kind, Form()] = "not-relevant",
) -> RedirectResponse:
    check_form(request, csrf)
    with _db(request).session() as s:
        try:
            given.not_relevant(s, dev_id, reason, datetime.now(UTC))
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return RedirectResponse(f"/developments/{dev_id}", status_code=303)


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
    reason: Reason = "other"


class FeedbackOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    development_id: int | None
    reason: str | None
    created_at: datetime
    undone_at: datetime | None


def _out(fb: Feedback) -> FeedbackOut:
    return FeedbackOut.model_validate(fb)


@router.post("/api/developments/{dev_id}/feedback", status_code=201, tags=["api"])
def api_give(request: Request, dev_id: int, body: FeedbackIn) -> FeedbackOut:
    """Mark a development not relevant (why: `reason`); reports like it score lower."""
    with _db(request).session() as s:
        try:
            return _out(given.not_relevant(s, dev_id, body.reason, datetime.now(UTC)))
        except ValueError as exc:
            raise HTTPException(404 if "no development" in str(exc) else 422, str(exc)) from None


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
