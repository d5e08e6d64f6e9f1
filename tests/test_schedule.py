"""Poll timing, as pure functions of the clock (no sleeps)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from monitor.schedule import (
    ADAPTIVE_MAX,
    JITTER,
    MAX_BACKOFF,
    MAX_HINT,
    adaptive_interval,
    next_error,
    next_success,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TEN = timedelta(minutes=10)


def test_success_keeps_the_feed_rhythm_with_bounded_jitter() -> None:
    rng = random.Random(1)
    due = NOW - timedelta(seconds=40)  # polled late by 40 s
    times = [next_success(NOW, due, TEN, rng=rng) for _ in range(200)]
    assert min(times) >= due + TEN
    assert max(times) <= due + TEN + TEN * JITTER
    assert len({t.second for t in times}) > 10  # spread, not lockstep


def test_after_a_long_pause_the_next_poll_counts_from_now() -> None:
    nxt = next_success(NOW, NOW - timedelta(hours=5), TEN, rng=random.Random(0))
    assert NOW + TEN <= nxt <= NOW + TEN * (1 + JITTER)


def test_server_hints_slow_polling_within_bounds_but_never_speed_it() -> None:
    slow = next_success(NOW, NOW, TEN, hint=timedelta(hours=1), rng=random.Random(0))
    assert slow >= NOW + timedelta(hours=1)
    capped = next_success(NOW, NOW, TEN, hint=timedelta(days=3), rng=random.Random(0))
    assert NOW + MAX_HINT <= capped <= NOW + MAX_HINT + TEN * JITTER
    fast = next_success(NOW, NOW, TEN, hint=timedelta(seconds=5), rng=random.Random(0))
    assert fast >= NOW + TEN


def test_errors_back_off_exponentially_up_to_a_cap() -> None:
    waits = [next_error(NOW, TEN, n) - NOW for n in range(1, 10)]
    assert waits[:4] == [TEN, 2 * TEN, 4 * TEN, 8 * TEN]
    assert waits[-1] == MAX_BACKOFF
    assert next_error(NOW, TEN, 10**6) - NOW == MAX_BACKOFF  # no overflow


def test_retry_after_is_honoured_within_bounds() -> None:
    assert next_error(NOW, TEN, 1, timedelta(minutes=45)) - NOW == timedelta(minutes=45)
    assert next_error(NOW, TEN, 1, timedelta(days=9)) - NOW == MAX_HINT
    assert next_error(NOW, TEN, 3, timedelta(seconds=1)) - NOW == 4 * TEN


def test_adaptive_interval_follows_the_publishing_rate() -> None:
    def every(gap: timedelta) -> list[datetime]:
        return [NOW - i * gap for i in range(12)]

    assert adaptive_interval(TEN, every(timedelta(minutes=2))) == TEN  # never below base
    assert adaptive_interval(TEN, every(timedelta(minutes=50))) == timedelta(minutes=25)
    assert adaptive_interval(TEN, every(timedelta(hours=12))) == ADAPTIVE_MAX
    assert adaptive_interval(TEN, every(timedelta(hours=12))[:3]) == TEN  # too few to tell
