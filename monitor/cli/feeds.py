"""`monitor feeds`: list, add, remove, OPML import and export."""

from __future__ import annotations

from pathlib import Path

import click

from monitor import store
from monitor.cli.app import Context, cli
from monitor.config import FeedConfig
from monitor.models import Feed


@cli.group()
def feeds() -> None:
    """List, add and remove feeds.

    Feeds from the config file are synced on every start: added, updated, and disabled
    when removed from the file. Feeds added here are kept until removed here.
    """


@feeds.command("list")
@click.pass_obj
def feeds_list(obj: Context) -> None:
    """Show every feed with its state and last error."""
    p = obj.pipeline()
    with p.db.session() as s:
        rows = store.feeds_in_order(s)
        for f in rows:
            state = "on " if f.enabled else "off"
            health = (
                f"ERROR x{f.error_count}: {f.last_error}"
                if f.error_count
                else f"ok {f.last_status or '-'}"
            )
            click.echo(
                f"{f.id:4} {state} {f.interval_seconds:>6}s {f.origin:6} "
                f"{(f.name or '')[:30]:30} {f.url}\n{'':17}{health}"
            )
        if not rows:
            click.echo("no feeds")


@feeds.command("add")
@click.argument("url")
@click.option("--name")
@click.option("--interval", help="e.g. 10m; omitted: follow the feed's publishing rate")
@click.pass_obj
def feeds_add(obj: Context, url: str, name: str | None, interval: str | None) -> None:
    """Add a feed by URL, after fetching it once to say what it holds."""
    import asyncio

    from pydantic import ValidationError

    from monitor.probe import probe

    try:
        cfg = FeedConfig(url=url, name=name, interval=interval)
    except ValidationError as exc:
        reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise click.BadParameter(reasons, param_hint="URL") from None
    p = obj.pipeline()
    with p.db.session() as s:
        if not store.add_feeds(s, [cfg], "cli", p.clock()):
            raise click.ClickException(f"feed already present: {cfg.url}")
    click.echo(f"added {cfg.url}")
    click.echo(f"  {asyncio.run(probe(cfg.url, p.fetch_options))}")


@feeds.command("remove")
@click.argument("url_or_id")
@click.pass_obj
def feeds_remove(obj: Context, url_or_id: str) -> None:
    """Remove a feed (and its entries) by URL or id."""
    p = obj.pipeline()
    with p.db.session() as s:
        f = store.by_number_or(s, Feed, Feed.url, url_or_id)
        if f is None:
            raise click.ClickException(f"no such feed: {url_or_id}")
        if f.origin == "config":
            raise click.ClickException(
                f"{f.url} comes from the config file: remove it there (it is then disabled)"
            )
        s.delete(f)
    click.echo(f"removed {url_or_id}")


@feeds.command("import")
@click.argument("opml_file", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.pass_obj
def feeds_import(obj: Context, opml_file: Path) -> None:
    """Add every feed of an OPML file (feeds already present are skipped)."""
    from monitor.opml import OpmlError, parse_opml

    try:
        found = parse_opml(opml_file.read_bytes())
    except OpmlError as exc:
        raise click.ClickException(f"{opml_file}: {exc}") from None
    wanted = []
    for f in found:
        try:
            wanted.append(FeedConfig(url=f.url, name=f.name))
        except ValueError:
            click.echo(f"{opml_file}: skipped {f.url!r}: not an http(s) feed address", err=True)
    p = obj.pipeline()
    with p.db.session() as s:
        added = len(store.add_feeds(s, wanted, "cli", p.clock()))
    click.echo(f"{opml_file}: {len(found)} feeds, {added} added, {len(found) - added} skipped")


@feeds.command("export")
@click.pass_obj
def feeds_export(obj: Context) -> None:
    """Print every enabled feed as OPML."""
    from monitor.opml import OpmlFeed, render_opml

    db = obj.database()
    with db.session() as s:
        rows = store.feeds_in_order(s, enabled_only=True)
        click.echo(render_opml([OpmlFeed(f.url, f.name) for f in rows]))
