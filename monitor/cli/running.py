"""Running: poll, deliver, run, web, status, db upgrade."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import SQLAlchemyError

from monitor import store
from monitor.cli.app import Context, cli
from monitor.db import Database

log = logging.getLogger("monitor")


@cli.command()
@click.pass_obj
def poll(obj: Context) -> None:
    """Poll every enabled feed once now, process it, deliver what is due, exit."""
    with one_at_a_time(obj, "poll"):
        _poll(obj)


def _poll(obj: Context) -> None:
    p = obj.pipeline()
    try:
        stats = asyncio.run(p.poll(only_due=False))
    finally:
        p.close()
    log.info(
        "polled %d feeds: %d changed, %d not modified, %d unchanged, %d errors; "
        "%d new and %d updated entries, %d developments, %d alerts",
        stats.feeds,
        stats.fetched,
        stats.not_modified,
        stats.unchanged,
        stats.errors,
        stats.new_entries,
        stats.updated_entries,
        stats.developments,
        stats.alerts,
    )
    if not stats.feeds:
        log.warning(NO_FEEDS, obj.config_path or "the config")
    d = asyncio.run(p.deliver_due())
    log.info("delivered %d, retrying %d, dead %d", d.delivered, d.retrying, d.dead)


NO_FEEDS = "no enabled feeds to poll: add [[feeds]] to %s, or run `monitor feeds add URL`"


@cli.command()
@click.pass_obj
def deliver(obj: Context) -> None:
    """Deliver every alert delivery that is due, then exit."""
    with one_at_a_time(obj, "deliver"):
        p = obj.pipeline()
        d = asyncio.run(p.deliver_due())
    log.info("delivered %d, retrying %d, dead %d", d.delivered, d.retrying, d.dead)


@cli.command()
@click.pass_obj
def run(obj: Context) -> None:
    """Run the service: poll feeds on their schedule until SIGTERM or Ctrl-C."""
    from monitor.service import serve

    with one_at_a_time(obj, "service", wait=0):
        p = obj.pipeline(service=True)
        try:
            asyncio.run(serve(p))
        finally:
            p.close()  # the parser pool's workers end with the service


@cli.group(invoke_without_command=True)
@click.pass_context
def web(ctx: click.Context) -> None:
    """Serve the web desk alone (no polling) on [web] listen, until SIGTERM or Ctrl-C;
    or, with a subcommand, make the secrets its sign-in needs."""
    if ctx.invoked_subcommand is not None:
        return
    import signal
    import threading

    from monitor.web.serve import Desk

    obj: Context = ctx.obj
    listen = obj.settings.web.listen
    if not listen:
        raise click.ClickException('[web] listen is "": set it to 127.0.0.1:PORT to serve the desk')
    desk = Desk(obj.settings, obj.database())
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if not desk.start():  # the address was in use, say: uvicorn said why
        desk.stop()
        raise click.ClickException(f"could not serve the web desk on {listen}")
    while not stop.wait(0.2) and desk.thread.is_alive():
        pass
    desk.stop()


@web.command("hash-password")
def hash_password() -> None:
    """Print the argon2 hash of a password (asked twice, or read from standard input),
    for a [[web.users]] entry's `password`."""
    import sys

    from monitor.web.auth import Passwords

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 8:
        raise click.ClickException("a password needs 8 characters or more")
    click.echo(Passwords().hash(password))


@web.command("new-token")
@click.option("--name", default="api", show_default=True, help="who the token is for")
@click.option(
    "--role", type=click.Choice(["viewer", "editor"]), default="viewer", show_default=True
)
def new_token(name: str, role: str) -> None:
    """Make an API token: prints the token (shown once: give it to its holder) and the
    [[web.tokens]] entry to paste into the config, which keeps only its SHA-256."""
    from monitor.web.auth import new_token as make

    token, digest = make()
    click.echo(f"token: {token}", err=True)
    click.echo(f'[[web.tokens]]\nname = "{name}"\ntoken_sha256 = "{digest}"\nrole = "{role}"')


@contextmanager
def one_at_a_time(obj: Context, what: str, wait: float | None = None) -> Iterator[None]:
    """db.single_worker for a command (waiting `[service] lock_wait` unless told), its
    refusal as one clear line."""
    from monitor.db import AlreadyRunning, single_worker

    if wait is None:
        wait = obj.settings.service.lock_wait.total_seconds()
    try:
        with single_worker(obj.database().engine, wait, what):
            yield
    except AlreadyRunning as exc:
        raise click.ClickException(str(exc)) from None


@cli.command()
@click.pass_obj
def status(obj: Context) -> None:
    """Check the database and print feeds, developments and the outbox at a glance.

    Exits non-zero when the database is unreachable or not migrated (a health check)."""
    from monitor.db import schema_revision

    db = obj.database(upgrade=False)
    try:
        _status(db)
    except SQLAlchemyError as exc:
        if schema_revision(db.engine) is None and "no such table" in str(exc):
            raise click.ClickException(
                "the database has no schema yet: run `monitor db upgrade` (every other "
                "command creates it on start)"
            ) from None
        raise click.ClickException(
            f"database not usable: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None


def _status(db: Database) -> None:
    with db.session() as s:
        n = store.counts(s)
    click.echo(f"database   {db.engine.url.render_as_string(hide_password=True)}  (reachable)")
    click.echo(f"feeds      {n['feeds']} ({n['failing']} failing)")
    click.echo(f"entries    {n['entries']}")
    click.echo(f"developments {n['developments']}, alerts {n['alerts']}")
    click.echo(
        "deliveries "
        + (", ".join(f"{k} {v}" for k, v in sorted(n["deliveries"].items())) or "none")
    )


# ------------------------------------------------------------------------ db --

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
