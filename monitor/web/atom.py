"""Alerts as an Atom feed (RFC 4287), all of them or one topic's, so any feed reader can
follow what the monitor announced. Written with ElementTree, which escapes every value."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from monitor.store import desk
from monitor.web.deps import DbSession

router = APIRouter()
ATOM = "http://www.w3.org/2005/Atom"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@router.get("/alerts.atom", response_class=Response)
def alerts_feed(
    request: Request, s: DbSession, topic: Annotated[str | None, Query(max_length=100)] = None
) -> Response:
    """The newest 50 development alerts as Atom; `topic` narrows them to one topic."""
    rows = desk.alerts(s, topic or None, 50)
    base = str(request.base_url).rstrip("/")
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")
    _text(feed, "title", f"monitor alerts: {topic}" if topic else "monitor alerts")
    _text(feed, "id", f"{base}/alerts.atom" + (f"?topic={topic}" if topic else ""))
    updated = max((a.created_at for a, _ in rows), default=EPOCH)
    _text(feed, "updated", updated.isoformat())
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="self", href=str(request.url))
    ET.SubElement(feed, f"{{{ATOM}}}link", rel="alternate", href=f"{base}/")
    author = ET.SubElement(feed, f"{{{ATOM}}}author")
    _text(author, "name", "monitor")
    for alert, dev in rows:
        entry = ET.SubElement(feed, f"{{{ATOM}}}entry")
        _text(entry, "title", dev.title)
        _text(entry, "id", f"urn:monitor:alert:{alert.public_id}")
        _text(entry, "updated", alert.created_at.isoformat())
        _text(entry, "published", alert.created_at.isoformat())
        ET.SubElement(
            entry, f"{{{ATOM}}}link", rel="alternate", href=f"{base}/developments/{dev.id}"
        )
        for t in dev.topics:
            ET.SubElement(entry, f"{{{ATOM}}}category", term=str(t))
        topics = ", ".join(str(t) for t in dev.topics) or "none"
        _text(entry, "summary", f"{dev.title} (topics: {topics})")
    body = ET.tostring(feed, encoding="utf-8", xml_declaration=True)
    return Response(body, media_type="application/atom+xml; charset=utf-8")


def _text(parent: ET.Element, tag: str, value: str) -> None:
    ET.SubElement(parent, f"{{{ATOM}}}{tag}").text = value
