"""Console channel: the alert as text on standard output (the default with no channels)."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from monitor.alerts import AlertContent, render_text
from monitor.channels.base import ChannelBase, Outcome

if TYPE_CHECKING:
    import httpx


class ConsoleChannel(ChannelBase):
    type: Literal["console"]


def send_console(content: AlertContent, stream: Any = None) -> Outcome:
    out = stream or sys.stdout
    out.write("\n=== ALERT " + "=" * 60 + "\n" + render_text(content) + "\n")
    out.flush()
    return Outcome(True)


async def send(
    ch: ConsoleChannel, content: AlertContent, now: datetime, client: httpx.AsyncClient
) -> Outcome:
    return send_console(content)
