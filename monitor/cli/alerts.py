"""`monitor alerts`: list alerts and retry their deliveries."""

from __future__ import annotations

import asyncio
import sys

import click

from monitor import store
from monitor.cli.app import Context, cli
from monitor.models import Alert, Development


@cli.group()
def alerts() -> None:
    """Inspect alerts and their deliveries."""


@alerts.command("list")
@click.option("--limit", default=20, show_default=True)
@click.option("--failed", is_flag=True, help="Only alerts with a dead delivery.")
@click.pass_obj
def alerts_list(obj: Context, limit: int, failed: bool) -> None:
    """Show recent alerts, newest first, with each channel's delivery state."""
    db = obj.database()
    with db.session() as s:
        rows = store.recent_alerts(s, limit, failed)
        for a in rows:
            dev = s.get(Development, a.development_id) if a.development_id else None
            click.echo(
                f"{a.created_at:%Y-%m-%d %H:%M} {a.public_id} {dev.title if dev else a.kind}"
            )
            if dev:
                click.echo(f"    topics: {', '.join(dev.topics)}  score {dev.score:.2f}")
            for d in a.deliveries:
                err = f"  last error: {d.last_error}" if d.last_error else ""
                click.echo(f"    {d.channel}: {d.status} after {d.attempts} attempt(s){err}")
        if not rows:
            click.echo("no alerts")


@alerts.command("retry")
@click.argument("alert_id")
@click.pass_obj
def alerts_retry(obj: Context, alert_id: str) -> None:
    """Send ALERT_ID's undelivered deliveries again now (dead letters included).

    ALERT_ID is the alert's public id (msg_…) or its number in `alerts list`."""
    p = obj.pipeline()
    with p.db.session() as s:
        alert = store.by_number_or(s, Alert, Alert.public_id, alert_id)
        if alert is None:
            raise click.ClickException(f"no such alert: {alert_id}")
        again = store.retry_deliveries(s, alert, p.clock())
        public_id = alert.public_id
    if not again:
        click.echo(f"{public_id}: every delivery already succeeded")
        return
    d = asyncio.run(p.deliver_due())
    click.echo(
        f"{public_id}: retried {again} delivery(ies): delivered {d.delivered}, "
        f"retrying {d.retrying}, dead {d.dead}"
    )
    if d.delivered < again:
        sys.exit(1)
