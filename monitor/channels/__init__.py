"""Alert channels: one module per kind, each holding its config model and its `send()`;
this registry joins them. Adding a kind is a module and a line here.

- webhook.py: JSON POST, Standard Webhooks signatures;
- smtp.py: email;
- chat.py: Apprise URLs (Slack, Telegram, Discord, …);
- console.py: standard output.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from monitor.channels import chat, console, smtp, webhook
from monitor.channels.base import ChannelBase, Outcome
from monitor.channels.chat import AppriseChannel
from monitor.channels.console import ConsoleChannel
from monitor.channels.smtp import EmailChannel
from monitor.channels.webhook import WebhookChannel

if TYPE_CHECKING:
    import httpx

    from monitor.alerts import AlertContent

__all__ = [
    "AppriseChannel",
    "Channel",
    "ChannelBase",
    "ChannelConfig",
    "ConsoleChannel",
    "EmailChannel",
    "Outcome",
    "WebhookChannel",
    "send",
]

ChannelConfig = WebhookChannel | EmailChannel | ConsoleChannel | AppriseChannel
Channel = Annotated[ChannelConfig, Field(discriminator="type")]

_SENDERS: dict[type[ChannelBase], Callable[..., Awaitable[Outcome]]] = {
    WebhookChannel: webhook.send,
    EmailChannel: smtp.send,
    ConsoleChannel: console.send,
    AppriseChannel: chat.send,
}


async def send(
    ch: ChannelConfig, content: AlertContent, now: datetime, client: httpx.AsyncClient
) -> Outcome:
    """Send `content` through `ch` within the channel's `timeout` for the whole send;
    never raises for a failed send (see Outcome)."""
    sender: Any = _SENDERS[type(ch)]
    deadline = ch.timeout.total_seconds()
    try:
        async with asyncio.timeout(deadline):
            outcome: Outcome = await sender(ch, content, now, client)
    except TimeoutError:
        return Outcome(False, retry=True, error=f"no complete answer within {deadline:g}s")
    return outcome
