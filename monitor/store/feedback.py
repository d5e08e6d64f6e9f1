"""Readers' feedback: given (and applied to the database at once), undone, listed, and
read back as the matcher's lessons (feedback.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from monitor.feedback import REASONS, Lesson, Lessons, fingerprint
from monitor.models import Development, Entry, Feedback

DISMISSED = "dismissed"  # the state of a development marked not relevant


def not_relevant(s: Session, dev_id: int, reason: str, now: datetime) -> Feedback:
    """Mark a development not relevant: it leaves the on-topic lists and announces nothing
    more, and reports like it score lower from now on. ValueError for an unknown reason
    or development."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    dev = s.get(Development, dev_id)
    if dev is None:
        raise ValueError(f"no development #{dev_id}")
    bags = s.scalars(select(Entry.cluster_features).where(Entry.development_id == dev_id))
    bag = fingerprint((f or {}).get("w") or {} for f in bags)
    fb = Feedback(
        kind="not-relevant",
        development_id=dev_id,
        reason=reason,
        created_at=now,
        data={"bag": bag, "state": dev.state},
    )
    if dev.state != DISMISSED:
        dev.state = DISMISSED
    s.add(fb)
    s.flush()
    return fb


def undo(s: Session, feedback_id: int, now: datetime) -> Feedback | None:
    """Take feedback back: the development returns to the state it had, and the lesson is
    no longer taught. None when there is no such feedback; undoing twice changes nothing."""
    fb = s.get(Feedback, feedback_id)
    if fb is None or fb.undone_at is not None:
        return fb
    fb.undone_at = now
    if fb.kind == "not-relevant" and fb.development_id is not None:
        dev = s.get(Development, fb.development_id)
        still = s.scalar(
            select(Feedback.id).where(
                Feedback.development_id == fb.development_id,
                Feedback.kind == "not-relevant",
                Feedback.undone_at.is_(None),
                Feedback.id != fb.id,
            )
        )
        if dev is not None and still is None and dev.state == DISMISSED:
            dev.state = str(fb.data.get("state") or "quiet")
    return fb


def of_development(s: Session, dev_id: int) -> list[Feedback]:
    return list(
        s.scalars(select(Feedback).where(Feedback.development_id == dev_id).order_by(Feedback.id))
    )


def lessons(s: Session) -> Lessons:
    """Every feedback not undone, as the matcher's lessons."""
    rows = s.scalars(
        select(Feedback).where(Feedback.kind == "not-relevant", Feedback.undone_at.is_(None))
    )
    return Lessons(
        tuple(
            Lesson(fb.id, fb.development_id, fb.reason or "other", fb.data.get("bag") or {})
            for fb in rows
            if fb.data.get("bag")
        )
    )
