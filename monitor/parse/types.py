"""What a parsed feed document is, whichever parser read it. Pure; no parser imported."""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True, slots=True)
class ParsedEntry:
    guid: str | None
    link: str | None
    title: str
    summary_html: str
    content_html: str
    published: datetime | None
    updated: datetime | None
    author: str | None = None
    language: str | None = None


@dataclass(frozen=True, slots=True)
class ParsedFeed:
    title: str | None
    link: str | None
    language: str | None
    ttl_minutes: int | None
    version: str
    entries: list[ParsedEntry] = field(default_factory=list)
    warning: str | None = None


def struct_date(value: Any) -> datetime | None:
    """A struct_time (as feedparser gives dates) as an aware datetime, or None."""
    if not isinstance(value, time.struct_time):
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(value), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None
