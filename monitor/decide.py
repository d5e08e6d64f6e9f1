"""Pure deciders: what a poll's answer means for a feed, and what a placed entry means for
its development. Values in, intents out; no database, no clock, no I/O.

`refresh.py` and `developments.py` gather the values, call these, and apply the intents.
Keeping the decisions here means each rule is stated once and tested alone (the next-poll
time used to be computed in six places).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from monitor.schedule import DEFAULT_INTERVAL, adaptive_interval, next_error, next_success

# ------------------------------------------------------------------------ feeds --


@dataclass(frozen=True)
class FeedView:
    """What the cadence decider needs of a feed row."""

    url: str
    interval: timedelta
    error_count: int
    due: datetime | None  # when this poll was due (the feed's rhythm continues from it)
    last_success_at: datetime | None = None
    created_at: datetime | None = None
    health_alerted_at: datetime | None = None
    adaptive: bool = False
    error_kind: str | None = None


@dataclass(frozen=True)
class FeedUpdate:
    """Intent: set these feed columns; `report_failing`: announce that the feed has been
    failing for longer than the configured limit (once)."""

    columns: dict[str, Any]
    failed: bool = False
    recovered: bool = False
    report_failing: bool = False


def feed_succeeded(
    feed: FeedView,
    now: datetime,
    hint: timedelta | None = None,
    dates: Sequence[datetime] | None = None,
) -> FeedUpdate:
    """A successful poll (a new document, the same one, or 304). `hint`: the longest
    freshness the server or the document asked for (Cache-Control, Expires, RSS ttl);
    `dates`: the entries' dates, which set an adaptive feed's interval."""
    interval = feed.interval
    columns: dict[str, Any] = {}
    if feed.adaptive and dates is not None:
        interval = adaptive_interval(DEFAULT_INTERVAL, dates)
        columns["interval_seconds"] = int(interval.total_seconds())
    columns.update(
        error_count=0,
        last_error=None,
        error_kind=None,
        last_success_at=now,
        health_alerted_at=None,
        next_poll_at=next_success(now, feed.due, interval, hint),
    )
    return FeedUpdate(columns, recovered=feed.error_count > 0)


def feed_failed(
    feed: FeedView,
    now: datetime,
    error: str,
    kind: str = "network",
    retry_after: timedelta | None = None,
    disable: bool = False,
    failure_alert: timedelta | None = None,
) -> FeedUpdate:
    """A failed poll (`kind` is one of errors.KINDS): back off, and report a feed that has
    been failing for `failure_alert`, once."""
    errors = feed.error_count + 1
    columns: dict[str, Any] = {
        "error_count": errors,
        "last_error": error[:2000],
        "error_kind": kind,
        "last_polled_at": now,
        "next_poll_at": next_error(now, feed.interval, errors, retry_after),
    }
    if disable:
        columns["enabled"] = False
    since = feed.last_success_at or feed.created_at
    report = bool(
        failure_alert
        and feed.health_alerted_at is None
        and since is not None
        and now - since >= failure_alert
    )
    if report:
        columns["health_alerted_at"] = now
    return FeedUpdate(columns, failed=True, report_failing=report)


def longest(*hints: timedelta | None) -> timedelta | None:
    """The longest of the freshness hints given, or None."""
    given = [h for h in hints if h is not None]
    return max(given) if given else None


# ----------------------------------------------------------------- developments --


@dataclass(frozen=True)
class Placement:
    """Intent for a new on-topic entry: join `development_id` (None: open a development in
    `state`), and whether the development is to be announced now."""

    development_id: int | None
    reason: str
    state: str = "quiet"
    announce: bool = False


def may_announce(state: str, relevant: bool, published_at: datetime, cutoff: datetime) -> bool:
    """A development is announced once: when an entry on topic and newer than the backfill
    cutoff reaches it while it is still quiet."""
    return state == "quiet" and relevant and published_at >= cutoff


def place(
    joined: int | None,
    joined_state: str | None,
    reason: str,
    relevant: bool,
    commentary: bool,
    published_at: datetime,
    cutoff: datetime,
) -> Placement:
    """Where a new on-topic entry goes, given the clusterer's choice (`joined`, with that
    development's state; None when it opens a new one)."""
    if joined is not None and joined_state is not None:
        return Placement(
            joined, reason, joined_state, may_announce(joined_state, relevant, published_at, cutoff)
        )
    state = "history" if published_at < cutoff else "quiet"
    # Analysis of an event we did not see is not an event: it opens, it does not alert.
    return Placement(
        None, "new", state, not commentary and may_announce(state, relevant, published_at, cutoff)
    )
