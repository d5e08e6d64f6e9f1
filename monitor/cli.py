"""The `monitor` command line."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from pathlib import Path
from typing import Any, TypeVar

import click
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import InstrumentedAttribute, Session

from monitor import __version__
from monitor.config import ConfigError, FeedConfig, Settings, load_settings
from monitor.db import Database
from monitor.models import Alert, Delivery, Development, Entry, Feed
from monitor.schedule import DEFAULT_INTERVAL

log = logging.getLogger("monitor")
M = TypeVar("M", Feed, Alert)


class Context:
    """Settings and database, made on first use so `--help` needs neither."""

    def __init__(self, config: Path | None) -> None:
        self.config_path = config
        self._settings: Settings | None = None
        self._db: Database | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.config_path)
            except ConfigError as exc:
                raise click.ClickException(str(exc)) from None
        return self._settings

    def database(self, upgrade: bool = True) -> Database:
        if self._db is None:
            url = self.settings.database.url
            assert url is not None
            db = Database(url)
            if upgrade:
                try:
                    db.upgrade()
                except SQLAlchemyError as exc:
                    raise click.ClickException(
                        f"database {db.engine.url.render_as_string(hide_password=True)} "
                        f"is not usable: {exc.__class__.__name__}: {exc.orig or exc}"
                        if hasattr(exc, "orig") else str(exc)) from None
            self._db = db
        return self._db

    def pipeline(self, polling: bool = False) -> Any:
        from monitor.pipeline import Pipeline

        p = Pipeline(self.settings, self.database())
        if polling:
            p.expect_poll()  # lanes start while the feeds are synced and claimed
        p.sync_feeds()
        # What is loaded by now (modules, mappers, settings) lives as long as the process:
        # frozen, full garbage collections stop rescanning it (tens of ms each, in a poll).
        gc.freeze()
        return p


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"), "level": record.levelname,
               "logger": record.name, "msg": record.getMessage()}
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def _by_number_or(s: Session, model: type[M], key: InstrumentedAttribute[str],
                  ref: str) -> M | None:
    """The row whose id is `ref` when it is a number, else whose `key` is `ref`."""
    column = model.id if ref.isdigit() else key
    return s.scalar(select(model).where(column == (int(ref) if ref.isdigit() else ref)))


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(
        "%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    for noisy in ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", type=click.Path(path_type=Path, dir_okay=False),
              envvar="MONITOR_CONFIG",
              help="TOML config file (default: ./monitor.toml, then "
                   "~/.config/monitor/monitor.toml, else built-in defaults).")
@click.option("--log-level", default="info", show_default=True, envvar="MONITOR_LOG_LEVEL",
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--log-format", default="human", show_default=True, envvar="MONITOR_LOG_FORMAT",
              type=click.Choice(["human", "json"]), help="Log lines as text or JSON objects.")
@click.version_option(__version__, prog_name="monitor")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_level: str, log_format: str) -> None:
    """Watch news feeds and alert once per new development on your topics."""
    _setup_logging(log_level, log_format)
    ctx.obj = Context(config)


@cli.command()
@click.pass_obj
def poll(obj: Context) -> None:
    """Poll every enabled feed once now, process it, deliver what is due, exit."""
    p = obj.pipeline(polling=True)
    stats = asyncio.run(p.poll(only_due=False))
    log.info("polled %d feeds: %d changed, %d not modified, %d unchanged, %d errors; "
             "%d new and %d updated entries, %d developments, %d alerts", stats.feeds,
             stats.fetched, stats.not_modified, stats.unchanged, stats.errors,
             stats.new_entries, stats.updated_entries, stats.developments, stats.alerts)
    d = asyncio.run(p.deliver_due())
    log.info("delivered %d, retrying %d, dead %d", d.delivered, d.retrying, d.dead)


@cli.command()
@click.pass_obj
def deliver(obj: Context) -> None:
    """Deliver every alert delivery that is due, then exit."""
    p = obj.pipeline()
    d = asyncio.run(p.deliver_due())
    log.info("delivered %d, retrying %d, dead %d", d.delivered, d.retrying, d.dead)


@cli.command()
@click.pass_obj
def run(obj: Context) -> None:
    """Run the service: poll feeds on their schedule until SIGTERM or Ctrl-C."""
    from monitor.db import AlreadyRunning, single_worker
    from monitor.service import serve

    db = obj.database()
    try:
        with single_worker(db.engine):
            asyncio.run(serve(obj.pipeline()))
    except AlreadyRunning as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.pass_obj
def status(obj: Context) -> None:
    """Check the database and print feeds, developments and the outbox at a glance.

    Exits non-zero when the database is unreachable or not migrated (a health check)."""
    db = obj.database(upgrade=False)
    try:
        _status(db)
    except SQLAlchemyError as exc:
        raise click.ClickException(f"database not usable: {type(exc).__name__}: "
                                   f"{str(exc).splitlines()[0]}") from None


def _status(db: Database) -> None:
    with db.session() as s:
        feeds = s.scalar(select(func.count()).select_from(Feed)) or 0
        failing = s.scalar(select(func.count()).select_from(Feed)
                           .where(Feed.error_count > 0)) or 0
        entries = s.scalar(select(func.count()).select_from(Entry)) or 0
        devs = s.scalar(select(func.count()).select_from(Development)) or 0
        alerts = s.scalar(select(func.count()).select_from(Alert)) or 0
        by_status = dict(s.execute(select(Delivery.status, func.count())
                                   .group_by(Delivery.status)).tuples().all())
    click.echo(f"database   {db.engine.url.render_as_string(hide_password=True)}  (reachable)")
    click.echo(f"feeds      {feeds} ({failing} failing)")
    click.echo(f"entries    {entries}")
    click.echo(f"developments {devs}, alerts {alerts}")
    click.echo("deliveries " + (", ".join(f"{k} {v}" for k, v in sorted(by_status.items()))
                                or "none"))


# ------------------------------------------------------------------------ db --

@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(obj: Context) -> None:
    """Apply all migrations (also done automatically on start)."""
    obj.database(upgrade=True)
    click.echo("database schema is up to date")


# --------------------------------------------------------------------- feeds --

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
        rows = list(s.scalars(select(Feed).order_by(Feed.id)))
        for f in rows:
            state = "on " if f.enabled else "off"
            health = f"ERROR x{f.error_count}: {f.last_error}" if f.error_count else \
                f"ok {f.last_status or '-'}"
            click.echo(f"{f.id:4} {state} {f.interval_seconds:>6}s {f.origin:6} "
                       f"{(f.name or '')[:30]:30} {f.url}\n{'':17}{health}")
        if not rows:
            click.echo("no feeds")


@feeds.command("add")
@click.argument("url")
@click.option("--name")
@click.option("--interval", help="e.g. 10m; omitted: follow the feed's publishing rate")
@click.pass_obj
def feeds_add(obj: Context, url: str, name: str | None, interval: str | None) -> None:
    """Add a feed by URL."""
    try:
        cfg = FeedConfig(url=url, name=name, interval=interval)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    p = obj.pipeline()
    with p.db.session() as s:
        if s.scalar(select(Feed).where(Feed.url == cfg.url)) is not None:
            raise click.ClickException(f"feed already present: {cfg.url}")
        s.add(Feed(url=cfg.url, name=cfg.name, origin="cli", enabled=True,
                   interval_seconds=int(cfg.poll_interval.total_seconds()),
                   adaptive=cfg.interval is None,
                   next_poll_at=p.clock()))
    click.echo(f"added {cfg.url}")


@feeds.command("remove")
@click.argument("url_or_id")
@click.pass_obj
def feeds_remove(obj: Context, url_or_id: str) -> None:
    """Remove a feed (and its entries) by URL or id."""
    p = obj.pipeline()
    with p.db.session() as s:
        f = _by_number_or(s, Feed, Feed.url, url_or_id)
        if f is None:
            raise click.ClickException(f"no such feed: {url_or_id}")
        if f.origin == "config":
            raise click.ClickException(
                f"{f.url} comes from the config file: remove it there (it is then disabled)")
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
    p = obj.pipeline()
    added = 0
    with p.db.session() as s:
        known = set(s.scalars(select(Feed.url)))
        for f in found:
            if f.url in known or not f.url.startswith(("http://", "https://")):
                continue
            s.add(Feed(url=f.url, name=f.name, origin="cli", enabled=True, adaptive=True,
                       interval_seconds=int(DEFAULT_INTERVAL.total_seconds()),
                       next_poll_at=p.clock()))
            known.add(f.url)
            added += 1
    click.echo(f"{opml_file}: {len(found)} feeds, {added} added, {len(found) - added} skipped")


@feeds.command("export")
@click.pass_obj
def feeds_export(obj: Context) -> None:
    """Print every enabled feed as OPML."""
    from monitor.opml import OpmlFeed, render_opml

    db = obj.database()
    with db.session() as s:
        rows = s.scalars(select(Feed).where(Feed.enabled.is_(True)).order_by(Feed.id))
        click.echo(render_opml([OpmlFeed(f.url, f.name) for f in rows]))


# -------------------------------------------------------------------- alerts --

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
        q = select(Alert).order_by(Alert.created_at.desc(), Alert.id.desc())
        if failed:
            q = q.where(Alert.deliveries.any(Delivery.status == "dead"))
        rows = list(s.scalars(q.limit(limit)))
        for a in rows:
            dev = s.get(Development, a.development_id) if a.development_id else None
            click.echo(f"{a.created_at:%Y-%m-%d %H:%M} {a.public_id} "
                       f"{dev.title if dev else a.kind}")
            if dev:
                click.echo(f"    topics: {', '.join(dev.topics)}  score {dev.score:.2f}")
            for d in a.deliveries:
                err = f"  last error: {d.last_error}" if d.last_error else ""
                click.echo(f"    {d.channel}: {d.status} after {d.attempts} attempt(s){err}")
        if not rows:
            click.echo("no alerts")


# ------------------------------------------------------------------- explain --

@cli.command()
@click.argument("url")
@click.pass_obj
def explain(obj: Context, url: str) -> None:
    """Show why the stored entry at URL did or did not match, and where it was grouped."""
    from monitor.match import Matcher, load_profile
    from monitor.match import explain as explain_match
    from monitor.normalize import canonical_url

    db = obj.database()
    canon = canonical_url(url)
    with db.session() as s:
        entry = s.scalar(select(Entry).where((Entry.canonical_url == canon) | (Entry.url == url))
                         .order_by(Entry.id))
        if entry is None:
            raise click.ClickException(f"no stored entry has the URL {canon}")
        feed = s.get(Feed, entry.feed_id)
        profile = load_profile(obj.settings.matching.topics)
        matcher = Matcher(profile, obj.settings.matching.threshold)
        ex = explain_match(matcher, entry.title, entry.text)
        verdict = "MATCHED" if ex.result.relevant else "did not match"
        click.echo(f"{entry.title}\n  {entry.canonical_url or entry.url}\n  feed: "
                   f"{feed.name if feed else '?'}; published {entry.published_at:%Y-%m-%d %H:%M}"
                   f" UTC; revision {entry.revision}")
        click.echo(f"\n{verdict}: best score {ex.result.best:.2f}, threshold "
                   f"{matcher.threshold:.2f}")
        for topic in profile.topics:
            ts = ex.result.scores.get(topic.id)
            if ts is None:
                groups = " or ".join("+".join(g) for g in topic.require)
                click.echo(f"  {topic.id:18} -     (needs {groups} in one sentence)")
            else:
                click.echo(f"  {topic.id:18} {ts.score:.2f}")
        click.echo("\nconcepts found, sentence by sentence:")
        for sentence, hits in ex.sentences:
            found = ", ".join(f"{h.concept}:{h.surface}" for h in hits) or "-"
            click.echo(f"  {sentence[:100]}\n      -> {found}")
        if entry.development_id is None:
            click.echo("\nnot in a development")
            return
        dev = s.get(Development, entry.development_id)
        assert dev is not None
        others = s.scalar(select(func.count()).select_from(Entry)
                          .where(Entry.development_id == dev.id)) or 0
        click.echo(f"\ndevelopment #{dev.id} ({dev.state}): {dev.title}\n  joined as: "
                   f"{entry.join_reason or '-'}; {others} report(s) in it")
        alert = s.scalar(select(Alert).where(Alert.development_id == dev.id))
        if alert is not None:
            click.echo(f"  alert {alert.public_id} at {alert.created_at:%Y-%m-%d %H:%M} UTC")
        _explain_neighbours(obj, s, entry)


def _explain_neighbours(obj: Context, s: Any, entry: Entry) -> None:
    """The clustered reports published within the window before and after `entry`, most
    alike first: what each shares with it, and whether that clears the bar."""
    from monitor.cluster import ClusterParams, compare, document_frequencies, features_from_json

    if not entry.cluster_features:
        return
    params = ClusterParams(window=obj.settings.matching.cluster_window)
    near = list(s.scalars(select(Entry).where(
        Entry.id != entry.id, Entry.development_id.is_not(None),
        Entry.published_at >= entry.published_at - params.window,
        Entry.published_at <= entry.published_at + params.window).limit(2000)))
    mine = features_from_json(entry.cluster_features)
    theirs = [(e, features_from_json(e.cluster_features)) for e in near if e.cluster_features]
    idf = document_frequencies([mine, *(f for _, f in theirs)])
    rows = sorted(((compare(mine, f, idf, params), e) for e, f in theirs),
                  key=lambda r: -r[0].similarity)[:5]
    if not rows:
        return
    click.echo("\nmost alike clustered reports (similarity / bar; what they share):")
    for c, e in rows:
        same = "same development" if e.development_id == entry.development_id else \
            f"development #{e.development_id}"
        shared = "; ".join(f"{k}: {', '.join(v)}" for k, v in (
            ("entities", c.entities), ("names", c.names), ("numbers", c.numbers),
            ("words", c.words)) if v) or "nothing"
        conflict = "; different places" if c.place_conflict else ""
        click.echo(f"  {c.similarity:.2f} / {c.bar:.2f}{' across languages' if c.cross else ''}"
                   f" [{same}] {e.title[:70]}\n      shares {shared}{conflict}")


@alerts.command("retry")
@click.argument("alert_id")
@click.pass_obj
def alerts_retry(obj: Context, alert_id: str) -> None:
    """Send ALERT_ID's undelivered deliveries again now (dead letters included).

    ALERT_ID is the alert's public id (msg_…) or its number in `alerts list`."""
    p = obj.pipeline()
    with p.db.session() as s:
        alert = _by_number_or(s, Alert, Alert.public_id, alert_id)
        if alert is None:
            raise click.ClickException(f"no such alert: {alert_id}")
        again = [d for d in alert.deliveries if d.status != "delivered"]
        for d in again:
            d.status, d.attempts, d.next_attempt_at = "pending", 0, p.clock()
            d.lease_owner = d.lease_until = None
        public_id = alert.public_id
    if not again:
        click.echo(f"{public_id}: every delivery already succeeded")
        return
    d = asyncio.run(p.deliver_due())
    click.echo(f"{public_id}: retried {len(again)} delivery(ies): delivered {d.delivered}, "
               f"retrying {d.retrying}, dead {d.dead}")
    if d.delivered < len(again):
        sys.exit(1)


# ------------------------------------------------------------------ channels --

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
    from monitor.deliver import send

    settings = obj.settings
    by_name = dict(zip(settings.channel_names(), settings.channels, strict=True))
    ch = by_name.get(name)
    if ch is None:
        raise click.ClickException(f"no channel named {name!r}; have: {', '.join(by_name)}")
    now = datetime.now(UTC)
    content = AlertContent(
        id=new_alert_id(), kind="test", created_at=now,
        title="Test alert from monitor: this channel works", score=0.0,
        topics=[TopicRef("test", "Channel test", 0.0, ["sent by `monitor channels test`"])],
        articles=[ArticleRef("https://example.org/monitor-test", "Test article", "monitor",
                             now)])

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


# -------------------------------------------------------------------- topics --

@cli.group()
def topics() -> None:
    """The topic profile that entries are matched against."""


@topics.command("show")
@click.pass_obj
def topics_show(obj: Context) -> None:
    """Print the active topic profile."""
    from monitor.match import load_profile

    profile = load_profile(obj.settings.matching.topics)
    threshold = obj.settings.matching.threshold or profile.threshold
    click.echo(f"profile: {profile.source}   threshold: {threshold}")
    for t in profile.topics:
        click.echo(f"\n[{t.id}] {t.title}\n  {' '.join(t.description.split())}")
        click.echo("  needs in one sentence: " + " | ".join(" + ".join(g) for g in t.require))
    by_concept: dict[str, list[str]] = {}
    for term in profile.terms:
        by_concept.setdefault(term.concept, []).append(term.key)
    click.echo("\nconcepts:")
    for concept, keys in sorted(by_concept.items()):
        click.echo(f"  {concept}: {', '.join(keys)}")


@topics.command("derive")
@click.argument("article", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the draft here instead of standard output.")
def topics_derive(article: Path, output: Path | None) -> None:
    """Draft a topic profile from ARTICLE (plain text, headline on the first line)."""
    import tomllib
    from importlib import resources

    from monitor.derive import derive

    base = tomllib.loads(resources.files("monitor").joinpath("data/topics.toml")
                         .read_text("utf-8"))
    draft = derive(article.read_text(encoding="utf-8"), base)
    if output:
        output.write_text(draft, encoding="utf-8")
        click.echo(f"draft written to {output}; edit it, then set [matching] topics", err=True)
    else:
        click.echo(draft)


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)

