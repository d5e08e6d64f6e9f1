"""Chat and push channels through Apprise (Slack, Telegram, Discord, Teams, Matrix, ntfy…),
one URL scheme for all; Apprise is imported only when such a channel sends."""

from __future__ import annotations

import importlib.util
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, model_validator

from monitor.alerts import AlertContent, render_text, subject
from monitor.channels.base import ChannelBase, Outcome

if TYPE_CHECKING:
    import httpx


class AppriseChannel(ChannelBase):
    """Chat and push services through Apprise URLs (slack://, tgram://, discord://, …)."""

    type: Literal["apprise"]
    urls: list[SecretStr] = Field(min_length=1)  # they carry tokens: never printed

    @model_validator(mode="after")
    def _installed(self) -> AppriseChannel:
        if importlib.util.find_spec("apprise") is None:
            raise ValueError(
                "apprise channels need Apprise, an optional part: pip install 'monitor[chat]'"
            )
        return self


async def send(
    ch: AppriseChannel, content: AlertContent, now: datetime, client: httpx.AsyncClient
) -> Outcome:
    """One notification to every URL of the channel; any failure retries the whole send."""
    import apprise  # only for apprise channels: it loads every plugin

    notifier = apprise.Apprise()
    for i, url in enumerate(ch.urls, 1):
        if not notifier.add(url.get_secret_value()):
            return Outcome(False, retry=False, error=f"apprise URL #{i} is not a valid URL")
    result = await notifier.async_notify(
        title=subject(content), body=render_text(content, ch.timezone)
    )
    if result:
        return Outcome(True)
    logs = " | ".join(entry.message for entry in list(result.logs())[-3:])
    return Outcome(
        False,
        retry=True,
        error=f"apprise: {result.failed_count} of {len(ch.urls)} failed {logs}"[:500],
    )
