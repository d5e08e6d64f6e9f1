"""The command group, its global options, and the Context every command shares."""

from __future__ import annotations

import gc
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click
from sqlalchemy.exc import SQLAlchemyError

from monitor import __version__
from monitor.config import ConfigError, Settings, load_settings
from monitor.db import Database
from monitor.errors import MonitorError

if TYPE_CHECKING:
    from monitor.pipeline import Pipeline

log = logging.getLogger("monitor")


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
                        if hasattr(exc, "orig")
                        else str(exc)
                    ) from None
            self._db = db
        return self._db

    def pipeline(self, service: bool = False) -> Pipeline:
        from monitor.pipeline import Pipeline

        p = Pipeline(self.settings, self.database(), service=service)
        p.sync_feeds()
        # What is loaded by now (modules, mappers, settings) lives as long as the process:
        # frozen, full garbage collections stop rescanning it (tens of ms each, in a poll).
        gc.freeze()
        return p


class TextFormatter(logging.Formatter):
    """Human log lines in which nothing a feed or a server sent can forge a line or a
    terminal escape: control characters of the message are written as escapes (the
    traceback that follows, if any, is the program's own and keeps its lines)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.message)
        return super().formatMessage(record)


def escape_controls(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def _setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter()
        if fmt == "json"
        else TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s")
    )
    logging.basicConfig(level=getattr(logging, level.upper(), logging.INFO), handlers=[handler])
    for noisy in ("httpx", "httpcore", "apscheduler.executors", "apscheduler.scheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "-c",
    type=click.Path(path_type=Path, dir_okay=False),
    envvar="MONITOR_CONFIG",
    help="TOML config file (default: ./monitor.toml, then "
    "~/.config/monitor/monitor.toml, else built-in defaults).",
)
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    envvar="MONITOR_LOG_LEVEL",
    type=click.Choice(["debug", "info", "warning", "error"]),
)
@click.option(
    "--log-format",
    default="human",
    show_default=True,
    envvar="MONITOR_LOG_FORMAT",
    type=click.Choice(["human", "json"]),
    help="Log lines as text or JSON objects.",
)
@click.version_option(__version__, prog_name="monitor")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, log_level: str, log_format: str) -> None:
    """Watch news feeds and alert once per new development on your topics."""
    _setup_logging(log_level, log_format)
    ctx.obj = Context(config)


def accept_config_everywhere(group: click.Group) -> None:
    """`--config FILE` after the command too (`monitor status --config FILE`), as users
    write it: every subcommand takes the option and sets the Context's config file."""

    def remember(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
        obj = ctx.find_object(Context)
        if value is not None and obj is not None:
            obj.config_path, obj._settings, obj._db = value, None, None

    for command in group.commands.values():
        if isinstance(command, click.Group):
            accept_config_everywhere(command)
            continue
        command.params.append(
            click.Option(
                ["--config", "-c"],
                type=click.Path(path_type=Path, dir_okay=False),
                expose_value=False,
                is_eager=True,
                callback=remember,
                help="TOML config file (as the option before the command).",
            )
        )


def main() -> None:
    try:
        cli(standalone_mode=True)
    except KeyboardInterrupt:
        sys.exit(130)
    except MonitorError as exc:  # an expected error no command turned into a message
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
