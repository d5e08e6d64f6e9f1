"""When to poll a feed next. Pure: times and hints in, times out.

A feed keeps its own rhythm (due + interval), spread by a little jitter so feeds added
together do not poll in lockstep. Servers may ask for less: Retry-After (429/503),
Cache-Control max-age or Expires, and RSS <ttl> are honoured up to MAX_HINT, never used
to poll faster than the feed's interval. Errors back off exponentially up to MAX_BACKOFF.
"""

from __future__ import annotations

import email.utils
import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from itertools import pairwise

# The polling interval of a feed that names none; adaptive feeds are never polled faster.
DEFAULT_INTERVAL = timedelta(minutes=10)
MAX_HINT = timedelta(hours=6)
MAX_BACKOFF = timedelta(hours=6)
JITTER = 0.1  # up to 10% of the interval
ADAPTIVE_MAX = timedelta(hours=1)
# A receiver or a feed server asking to wait longer than this is not believed.
MAX_RETRY_AFTER = timedelta(days=1)


def next_success(
    now: datetime,
    due: datetime | None,
    interval: timedelta,
    hint: timedelta | None = None,
    rng: random.Random | None = None,
) -> datetime:
    """The next poll after a successful one."""
    nxt = due + interval if due is not None else now + interval
    if nxt <= now:
        nxt = now + interval
    if hint is not None:
        nxt = max(nxt, now + min(hint, MAX_HINT))
    spread = rng.random() if rng is not None else random.random()
    return nxt + interval * (JITTER * spread)


def next_error(
    now: datetime, interval: timedelta, errors: int, retry_after: timedelta | None = None
) -> datetime:
    """The next poll after the `errors`-th failure in a row: doubling, capped."""
    factor: int = 2 ** min(max(errors - 1, 0), 16)
    backoff = min(MAX_BACKOFF, interval * factor)
    if retry_after is not None:
        backoff = max(backoff, min(retry_after, MAX_HINT))
    return now + backoff


def adaptive_interval(base: timedelta, published: Sequence[datetime]) -> timedelta:
    """For a feed without an explicit interval: half the median gap between its entries,
    never below `base` (the default) nor above ADAPTIVE_MAX. A feed that publishes twice a
    day is polled hourly; a wire feed at the default."""
    times = sorted(published)
    if len(times) < 5:
        return base
    gaps = sorted(b - a for a, b in pairwise(times))
    median = gaps[len(gaps) // 2]
    return max(base, min(ADAPTIVE_MAX, median / 2))


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(timedelta(seconds=int(value[:9])), MAX_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    try:
        return min(max(timedelta(0), when - now), MAX_RETRY_AFTER)
    except OverflowError:
        return MAX_RETRY_AFTER
