"""Readers' feedback: given (and applied to the database at once), undone, listed, and
read back as the matcher's lessons (feedback.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from monitor.feedback import REASONS, Lesson, Lessons, Link, Links, fingerprint
from monitor.models import Development, Entry, Feedback

DISMISSED = "dismissed"  # the state of a development marked not relevant
MERGED = "merged"  # the state of a development merged into another ("same-as")


def _bag(s: Session, *where: Any) -> dict[str, float]:
    features = s.scalars(select(Entry.cluster_features).where(*where))
    return fingerprint((f or {}).get("w") or {} for f in features)


def not_relevant(s: Session, dev_id: int, reason: str, now: datetime) -> Feedback:
    """Mark a development not relevant: it leaves the on-topic lists and announces nothing
    more, and reports like it score lower from now on. ValueError for an unknown reason
    or development."""
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    dev = s.get(Development, dev_id)
    if dev is None:
        raise ValueError(f"no development #{dev_id}")
    bag = _bag(s, Entry.development_id == dev_id)
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


def _development_of(
    s: Session, entry: Entry, state: str, topics: list[str], now: datetime
) -> Development:
    """A development of one report, opened by a reader's feedback (flushed: it has an id)."""
    dev = Development(
        title=entry.title or entry.text[:200],
        topics=topics,
        languages=[entry.language] if entry.language else [],
        score=entry.score,
        first_seen_at=entry.first_seen_at,
        last_seen_at=now,
        event_at=entry.published_at,
        state=state,
        primary_entry_id=entry.id,
    )
    s.add(dev)
    s.flush()
    return dev


def same_as(s: Session, dev_id: int, other_id: int, now: datetime) -> Feedback:
    """Merge development `dev_id` into `other_id`, the one event readers say they are:
    its reports move there, it is marked merged, and the clusterer learns to join reports
    like the two. ValueError for an unknown development or a development merged into
    itself."""
    dev, other = s.get(Development, dev_id), s.get(Development, other_id)
    if dev is None or other is None:
        raise ValueError(f"no development #{other_id if dev else dev_id}")
    if dev.id == other.id or dev.state == MERGED or other.state == MERGED:
        raise ValueError("a development is merged into another one, once")
    moved = list(s.scalars(select(Entry.id).where(Entry.development_id == dev_id)))
    fb = Feedback(
        kind="same-as",
        development_id=dev_id,
        created_at=now,
        data={
            "into": other_id,
            "moved": moved,
            "state": dev.state,
            "a": _bag(s, Entry.development_id == dev_id),
            "b": _bag(s, Entry.development_id == other_id),
        },
    )
    s.execute(update(Entry).where(Entry.id.in_(moved)).values(development_id=other_id))
    other.topics = sorted({*other.topics, *dev.topics})
    other.languages = sorted({*(other.languages or []), *(dev.languages or [])})
    other.last_seen_at = max(other.last_seen_at, dev.last_seen_at)
    dev.state = MERGED
    s.add(fb)
    s.flush()
    return fb


def not_part(s: Session, dev_id: int, entry_id: int, now: datetime) -> Feedback:
    """Split one report off its development, which readers say it does not belong to: it
    opens a development of its own (not announced: the reader has seen it), and the
    clusterer learns to hold reports like the two apart. ValueError when the report is
    not in that development, or is all of it."""
    entry = s.get(Entry, entry_id)
    dev = s.get(Development, dev_id)
    if entry is None or dev is None or entry.development_id != dev_id:
        raise ValueError(f"report #{entry_id} is not part of development #{dev_id}")
    rest = s.scalar(
        select(func.count()).where(Entry.development_id == dev_id, Entry.id != entry_id)
    )
    if not rest:
        raise ValueError("the report is the whole development: mark it not relevant instead")
    alone = _development_of(s, entry, "history", [], now)
    fb = Feedback(
        kind="not-part",
        development_id=dev_id,
        entry_id=entry_id,
        created_at=now,
        data={
            "alone": alone.id,
            "a": _bag(s, Entry.id == entry_id),
            "b": _bag(s, Entry.development_id == dev_id, Entry.id != entry_id),
        },
    )
    entry.development_id = alone.id
    entry.join_reason = "split by a reader"
    if dev.primary_entry_id == entry_id:
        dev.primary_entry_id = s.scalar(
            select(func.min(Entry.id)).where(Entry.development_id == dev_id)
        )
    s.add(fb)
    s.flush()
    return fb


def should_alert(s: Session, entry_id: int, topic: str, now: datetime) -> Feedback:
    """A report the monitor passed over that a reader says it should have alerted on
    `topic`: its development (opened for it if it has none) is to be announced now (the
    caller writes the alert: `Development.state` tells whether it still must), and reports
    like it are held on that topic from now on. ValueError for an unknown entry."""
    entry = s.get(Entry, entry_id)
    if entry is None:
        raise ValueError(f"no entry #{entry_id}")
    dev = s.get(Development, entry.development_id) if entry.development_id else None
    if dev is None:
        dev = _development_of(s, entry, "quiet", [topic], now)
        entry.development_id = dev.id
        entry.join_reason = "named by a reader"
    fb = Feedback(
        kind="should-alert",
        development_id=dev.id,
        entry_id=entry_id,
        reason=None,
        created_at=now,
        data={"bag": _bag(s, Entry.id == entry_id), "topic": topic, "state": dev.state},
    )
    dev.topics = sorted({*dev.topics, topic})
    s.add(fb)
    s.flush()
    return fb


def undo(s: Session, feedback_id: int, now: datetime) -> Feedback | None:
    """Take feedback back: what it changed is put back (a dismissed development's state,
    merged reports moved back, a split report returned), and its lesson is no longer
    taught. None when there is no such feedback; undoing twice changes nothing."""
    fb = s.get(Feedback, feedback_id)
    if fb is None or fb.undone_at is not None:
        return fb
    fb.undone_at = now
    if fb.kind == "same-as" and fb.development_id is not None:
        into, moved = fb.data.get("into"), list(fb.data.get("moved") or [])
        s.execute(
            update(Entry)
            .where(Entry.id.in_(moved), Entry.development_id == into)
            .values(development_id=fb.development_id)
        )
        dev = s.get(Development, fb.development_id)
        if dev is not None:
            dev.state = str(fb.data.get("state") or "quiet")
    elif fb.kind == "not-part" and fb.entry_id is not None:
        entry, alone = s.get(Entry, fb.entry_id), fb.data.get("alone")
        if entry is not None and entry.development_id == alone:
            entry.development_id = fb.development_id
            entry.join_reason = "returned by a reader"
            other = s.scalar(select(func.count()).where(Entry.development_id == alone))
            if not other and alone is not None and (gone := s.get(Development, alone)):
                s.delete(gone)
    elif fb.kind == "not-relevant" and fb.development_id is not None:
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


def links(s: Session) -> Links:
    """Every merge and split not undone, as the clusterer's lessons."""
    rows = s.scalars(
        select(Feedback).where(
            Feedback.kind.in_(("same-as", "not-part")), Feedback.undone_at.is_(None)
        )
    )
    return Links(
        tuple(
            Link(fb.id, fb.kind == "same-as", fb.data.get("a") or {}, fb.data.get("b") or {})
            for fb in rows
            if fb.data.get("a") and fb.data.get("b")
        )
    )


def version(s: Session) -> tuple[int, int]:
    """Changes when feedback is given or undone: the clustering index, which caches who
    is in which development, is rebuilt when it does."""
    given = s.scalar(select(func.max(Feedback.id))) or 0
    undone = s.scalar(select(func.count()).where(Feedback.undone_at.is_not(None))) or 0
    return int(given), int(undone)


def lessons(s: Session) -> Lessons:
    """Every feedback not undone, as the matcher's lessons."""
    rows = s.scalars(
        select(Feedback).where(
            Feedback.kind.in_(("not-relevant", "should-alert")), Feedback.undone_at.is_(None)
        )
    )
    return Lessons(
        tuple(
            Lesson(
                fb.id,
                fb.development_id,
                fb.reason or "other",
                fb.data.get("bag") or {},
                fb.data.get("topic") if fb.kind == "should-alert" else None,
                fb.entry_id,
            )
            for fb in rows
            if fb.data.get("bag")
        )
    )
