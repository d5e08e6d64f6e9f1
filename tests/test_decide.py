"""The pure deciders, alone: values in, intents out."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from monitor.decide import FeedView, feed_failed, feed_succeeded, longest, may_announce, place

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN = timedelta(minutes=10)


@pytest.fixture(autouse=True)
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("random.random", lambda: 0.0)


def test_success_keeps_the_rhythm_clears_errors_and_honours_hints() -> None:
    feed = FeedView("u", TEN, error_count=3, due=NOW - timedelta(minutes=1))
    update = feed_succeeded(feed, NOW)
    assert update.recovered and not update.failed
    assert update.columns["next_poll_at"] == NOW + timedelta(minutes=9)
    assert (
        update.columns["error_count"],
        update.columns["last_error"],
        update.columns["error_kind"],
    ) == (0, None, None)
    hinted = feed_succeeded(feed, NOW, hint=timedelta(hours=1))
    assert hinted.columns["next_poll_at"] == NOW + timedelta(hours=1)


def test_an_adaptive_feed_takes_its_interval_from_its_entries() -> None:
    dates = [NOW - timedelta(hours=2 * k) for k in range(8)]  # every two hours
    update = feed_succeeded(FeedView("u", TEN, 0, None, adaptive=True), NOW, dates=dates)
    assert update.columns["interval_seconds"] == 3600
    assert update.columns["next_poll_at"] == NOW + timedelta(hours=1)
    fixed = feed_succeeded(FeedView("u", TEN, 0, None), NOW, dates=dates)
    assert "interval_seconds" not in fixed.columns


def test_failures_back_off_and_are_reported_once_after_the_limit() -> None:
    started = NOW - timedelta(hours=30)
    first = feed_failed(
        FeedView("u", TEN, 0, None, last_success_at=started),
        NOW,
        "boom",
        "network",
        failure_alert=timedelta(days=2),
    )
    assert first.columns["next_poll_at"] == NOW + TEN and not first.report_failing
    third = feed_failed(
        FeedView("u", TEN, 2, None, last_success_at=started),
        NOW,
        "boom",
        "parse",
        failure_alert=timedelta(hours=24),
    )
    assert third.columns["next_poll_at"] == NOW + 4 * TEN
    assert third.report_failing and third.columns["health_alerted_at"] == NOW
    assert third.columns["error_kind"] == "parse"
    again = feed_failed(
        FeedView("u", TEN, 3, None, last_success_at=started, health_alerted_at=NOW),
        NOW,
        "boom",
        "parse",
        failure_alert=timedelta(hours=24),
    )
    assert not again.report_failing
    slow = feed_failed(
        FeedView("u", TEN, 0, None), NOW, "HTTP 429", "http", retry_after=timedelta(hours=2)
    )
    assert slow.columns["next_poll_at"] == NOW + timedelta(hours=2)
    gone = feed_failed(FeedView("u", TEN, 0, None), NOW, "gone", "gone", disable=True)
    assert gone.columns["enabled"] is False


def test_longest_hint() -> None:
    assert longest(None, None) is None
    assert longest(TEN, None, timedelta(hours=1)) == timedelta(hours=1)


def test_development_decisions() -> None:
    cutoff = NOW - timedelta(hours=24)
    assert may_announce("quiet", True, NOW, cutoff)
    assert not may_announce("alerted", True, NOW, cutoff)
    assert not may_announce("quiet", False, NOW, cutoff)
    assert not may_announce("quiet", True, cutoff - timedelta(seconds=1), cutoff)
    # Joining a quiet development with a relevant, recent report announces it.
    joined = place(7, "quiet", "similar:0.5", True, False, NOW, cutoff)
    assert (joined.development_id, joined.announce) == (7, True)
    # A new development: history when older than the backfill, and commentary never alerts.
    old = place(None, None, "new", True, False, cutoff - timedelta(hours=1), cutoff)
    assert (old.development_id, old.state, old.announce) == (None, "history", False)
    assert place(None, None, "new", True, False, NOW, cutoff).announce
    assert not place(None, None, "new", True, True, NOW, cutoff).announce
