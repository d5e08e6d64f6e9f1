"""When a channel gets an alert: instantly, held for quiet hours, or in its next digest.
Pure: times in, times out."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

TICK = timedelta(microseconds=1)


def quiet_until(now: datetime, quiet: tuple[time, time] | None, tz: str) -> datetime | None:
    """The end of the quiet period `now` falls in (as an aware datetime), else None."""
    if quiet is None:
        return None
    start, end = quiet
    local = now.astimezone(ZoneInfo(tz))
    t = local.time().replace(tzinfo=None)
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, ZoneInfo(tz))


def last_fire(cron: str, tz: str, after: datetime, now: datetime) -> datetime | None:
    """The latest time the digest schedule fired in (after, now], or None."""
    trigger = CronTrigger.from_crontab(cron, timezone=tz)
    due = None
    nxt = trigger.get_next_fire_time(None, after + TICK)
    while nxt is not None and nxt <= now:
        due = nxt
        nxt = trigger.get_next_fire_time(nxt, nxt + TICK)
    return due
