"""The values a config holds, read once: durations ("10m"), sizes ("10MB"), rates ("10/1h"),
quiet hours ("22:00-07:00"), crontabs and time zones. Each parser gives one clear message
naming the expected form; the Annotated types let pydantic models hold the parsed value,
so nothing downstream parses a string again.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    PlainValidator,
    model_validator,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 10**6,
    "mib": 2**20,
    "gb": 10**9,
    "gib": 2**30,
}


def parse_duration(value: object) -> timedelta:
    """Read "2s", "10m", "24h", "7d" as a timedelta. A bare number is refused (is
    `backfill = 24` a day or 24 seconds?), except 0, which means none."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        if value == 0:
            return timedelta(0)
        raise ValueError(
            f"invalid duration {value!r}: a number needs a unit, e.g. {value:g}s or {value:g}h"
        )
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"invalid duration {value!r}: use a number and a unit, e.g. 30s, 10m, 24h")


def parse_size(value: object) -> int:
    """Read "10MB", "512KiB" or a byte count."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (m := _SIZE.match(value)):
        return int(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()]
    raise ValueError(f"invalid size {value!r}: use e.g. 10MB or 512KiB")


class Rate(NamedTuple):
    """At most `limit` per `per`; read from "10/1h"."""

    limit: int
    per: timedelta

    def __str__(self) -> str:
        return f"{self.limit}/{int(self.per.total_seconds())}s"


def parse_rate(value: object) -> Rate:
    """ "10/1h" → Rate(10, 1 hour)."""
    if isinstance(value, Rate):
        return value
    count, _, per = str(value).partition("/")
    if not count.strip().isdigit() or int(count) < 1 or not per:
        raise ValueError(f"invalid rate {value!r}: use COUNT/DURATION, e.g. 10/1h")
    return Rate(int(count), parse_duration(per))


class QuietHours(NamedTuple):
    """A daily span in a channel's time zone; it may cross midnight."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"


def parse_quiet_hours(value: object) -> QuietHours:
    """ "22:00-07:00" → QuietHours(22:00, 07:00)."""
    if isinstance(value, QuietHours):
        return value
    start, _, end = str(value).partition("-")
    try:
        return QuietHours(time.fromisoformat(start.strip()), time.fromisoformat(end.strip()))
    except ValueError:
        raise ValueError(f"invalid quiet hours {value!r}: use HH:MM-HH:MM") from None


def check_cron(value: str) -> str:
    """A crontab line APScheduler accepts (kept as text: the trigger needs a time zone)."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise ValueError(f"invalid crontab {value!r}: {exc}") from None
    return value


def check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use e.g. Europe/Moscow)") from None
    return value


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Size = Annotated[int, BeforeValidator(parse_size)]
RateLimit = Annotated[Rate, PlainValidator(parse_rate), PlainSerializer(str)]
Quiet = Annotated[QuietHours, PlainValidator(parse_quiet_hours), PlainSerializer(str)]
Crontab = Annotated[str, BeforeValidator(check_cron)]
TimeZone = Annotated[str, BeforeValidator(check_zone)]


# Keys whose value may instead be read from a file (`password_file = "/run/secrets/smtp"`,
# `MONITOR_DATABASE__URL_FILE=...`), so secrets can stay out of the config file and the
# environment: Docker secrets and systemd credentials are files. The file wins over the
# plain key, so an environment `..._FILE` overrides a value in the config file.
SECRET_KEYS = ("password", "secret", "url", "username")


class Section(BaseModel):
    """A config section: unknown keys are errors; `KEY_file` reads a secret from a file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _read_secret_files(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for key in SECRET_KEYS:
            file = data.get(f"{key}_file")
            if key not in cls.model_fields or file is None:
                continue
            path = Path(str(file)).expanduser()
            try:
                value = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                raise ValueError(f"{key}_file: cannot read {path}: {reason}") from None
            data = {k: v for k, v in data.items() if k != f"{key}_file"} | {key: value}
        return data
