"""`monitor channels`: list the alert channels, send a test alert."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from monitor.cli.app import Context, cli


@cli.group()
def channels() -> None:
    """The configured alert channels."""


@channels.command("list")
@click.pass_obj
def channels_list(obj: Context) -> None:
    """Show each channel with its filter (secrets are never printed)."""
    settings = obj.settings
    if not settings.channels:
        click.echo("no channels: alerts go to the console")
    for name, ch in zip(settings.channel_names(), settings.channels, strict=True):
        scope = f"topics {', '.join(ch.topics)}" if ch.topics else "all topics"
        click.echo(f"{name:20} {ch.type:8} {scope}; min score {ch.min_score}")


@channels.command("test")
@click.argument("name")
@click.pass_obj
def channels_test(obj: Context, name: str) -> None:
    """Send a test alert through channel NAME and print the outcome."""
    from datetime import UTC, datetime

    from monitor.alerts import AlertContent, ArticleRef, TopicRef, new_alert_id
    from monitor.channels import send

    settings = obj.settings
    by_name = dict(zip(settings.channel_names(), settings.channels, strict=True))
    ch = by_name.get(name)
    if ch is None:
        raise click.ClickException(f"no channel named {name!r}; have: {', '.join(by_name)}")
    now = datetime.now(UTC)
    content = AlertContent(
        id=new_alert_id(),
        kind="test",
        created_at=now,
        title="Test alert from monitor: this channel works",
        score=0.0,
        topics=[TopicRef("test", "Channel test", 0.0, ["sent by `monitor channels test`"])],
        articles=[ArticleRef("https://example.org/monitor-test", "Test article", "monitor", now)],
    )

    async def go() -> Any:
        import httpx

        async with httpx.AsyncClient() as client:
            return await send(ch, content, now, client)

    outcome = asyncio.run(go())
    if outcome.delivered:
        click.echo(f"{name}: delivered (alert {content.id})")
    else:
        kind = "temporary, would be retried" if outcome.retry else "permanent"
        raise click.ClickException(f"{name}: failed ({kind}): {outcome.error}")
