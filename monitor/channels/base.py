"""What every channel has: its filter and routing settings, and the Outcome of a send.

A send returns an Outcome instead of raising: delivered, retry later (network errors, 429,
5xx, honouring Retry-After), or failed for good (other 4xx). The outbox turns outcomes
into retries with backoff or a dead letter.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from pydantic import Field

from monitor.values import Crontab, Duration, Quiet, RateLimit, Section, TimeZone


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    retry: bool = False
    error: str | None = None
    retry_after: timedelta | None = None


class ChannelBase(Section):
    """What every channel has: a name and the filter deciding which alerts it gets."""

    name: str | None = None
    topics: list[str] | None = Field(None, description="only alerts on these topics")
    min_score: float = Field(0.0, ge=0, description="only alerts scoring at least this")

    mode: Literal["instant", "digest"] = "instant"
    digest_cron: Crontab = Field("0 8 * * *", description="when digests go out (crontab)")
    timezone: TimeZone = "UTC"
    rate_limit: RateLimit | None = Field(None, description="e.g. 10/1h; the rest: digest")
    quiet_hours: Quiet | None = Field(None, description="e.g. 22:00-07:00, in `timezone`")
    # The whole send, from connecting to the last byte of the answer: a receiver that
    # trickles its reply is cut off here (a per-read timeout never fires on it).
    timeout: Duration = timedelta(seconds=30)

    def wants(self, topics: list[str], score: float) -> bool:
        if score < self.min_score:
            return False
        return self.topics is None or bool(set(self.topics) & set(topics))
