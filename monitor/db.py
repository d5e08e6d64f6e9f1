"""Database access: engine, sessions, and schema upgrades through Alembic."""

from __future__ import annotations

import fcntl
import os
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session, sessionmaker

from monitor import jsoncodec
from monitor.errors import ConfigError, MonitorError

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATION_LOCK_KEY = 0x6D6F6E6D  # any constant private to this application
# The newest migration (tests/test_migrations.py checks it is Alembic's head). Every start
# checks the database against it, and only a database behind it loads Alembic at all.
SCHEMA_HEAD = "0011"


WAL_CHECKPOINT_PAGES = 10_000


FORMS = "sqlite:///PATH/monitor.db or postgresql+psycopg://USER:PASSWORD@HOST/DATABASE"


# Every engine of this process: a forked child (a one-shot poll's parser workers and
# fetching helpers) drops their connections without closing them, which would end the
# parent's sessions on a server (SQLAlchemy's advice for os.fork).
_ENGINES: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_connections() -> None:
    for engine in list(_ENGINES):
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_connections)


def make_engine(url: str) -> Engine:
    """Create the engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    engine = _make_engine(url)
    _ENGINES.add(engine)
    return engine


# The JSON columns' text, read and written by orjson (jsoncodec.py).
JSON_CODEC: dict[str, Any] = {
    "json_serializer": jsoncodec.dumps,
    "json_deserializer": jsoncodec.loads,
}


def _make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        shown = url if "@" not in url else url.split("://")[0] + "://…"
        raise ConfigError(f"database url {shown!r} is not a database URL: use {FORMS}") from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30}, **JSON_CODEC)

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # A checkpoint (copying the log into the database, with its fsyncs) every
            # ~40 MB of log rather than every 4 MB: a poll that stores thousands of
            # entries spends a third less time committing; readers are not affected.
            cur.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
            cur.close()

        return engine
    try:
        return create_engine(url, pool_pre_ping=True, **JSON_CODEC)
    except NoSuchModuleError:
        raise ConfigError(
            f"database url {parsed.render_as_string(hide_password=True)!r} names an unknown "
            f"database kind {parsed.drivername!r}: use {FORMS}"
        ) from None
    except ModuleNotFoundError as exc:  # a driver that is an extra
        extra = (
            "monitor[postgres]"
            if parsed.get_backend_name() == "postgresql"
            else f"the {exc.name} package"
        )
        raise ConfigError(
            f"database {parsed.render_as_string(hide_password=True)} needs a "
            f"driver that is not installed ({exc.name}): pip install "
            f"'{extra}'"
        ) from None


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Database:
    """The engine plus a session factory; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self.sessions() as s, s.begin():
            yield s

    def upgrade(self) -> None:
        upgrade(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(engine: Engine | None = None) -> AlembicConfig:
    """Alembic configured to the migrations shipped with the package."""
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(resources.files("monitor.migrations")))
    if engine is not None:
        cfg.attributes["connection_engine"] = engine
        # Alembic's options are ConfigParser values: a "%" (an escaped character in a
        # password, a path) would be read as interpolation, so it is doubled.
        url = engine.url.render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision`; the only way the schema is created or changed.

    Processes starting together take turns: an advisory lock on PostgreSQL, a file lock
    beside the database file on SQLite (whose DDL Alembic cannot run in one transaction).
    """
    if revision == "head" and schema_revision(engine) == SCHEMA_HEAD:
        return  # the usual start: nothing to do
    from alembic import command

    with _sqlite_file_lock(engine), engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def schema_revision(engine: Engine) -> str | None:
    """The migration the database is at; None for a new database."""
    try:
        with engine.connect() as conn:
            revision = conn.scalar(text("SELECT version_num FROM alembic_version"))
    except SQLAlchemyError:
        return None
    return str(revision) if revision is not None else None


class AlreadyRunning(MonitorError, RuntimeError):
    pass


@contextmanager
def single_worker(engine: Engine, wait: float = 0.0, what: str = "service") -> Iterator[None]:
    """On SQLite, hold an exclusive lock while this process uses the database (`run` for
    its life, `poll` and `deliver` for theirs): SQLite has one writer, and two processes
    sharing it would take over each other's live leases and send alerts twice. The lock
    is waited for up to `wait` seconds (a `poll` after another `poll`), then refused with
    a clear message. PostgreSQL needs no such lock: workers share it through row leases."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.run.lock", "a+") as fh:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() < deadline:
                    time.sleep(0.2)
                    continue
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                waited = f" (waited {wait:g}s)" if wait else ""
                raise AlreadyRunning(
                    f"another monitor ({holder}) is using the SQLite database {path}"
                    f"{waited}; SQLite allows one process at a time, so this {what} did not "
                    "start. Stop the other, or use PostgreSQL to run several workers."
                ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def _sqlite_file_lock(engine: Engine) -> Iterator[None]:
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def database_down(exc: BaseException) -> str | None:
    """One line for an error that means the database cannot be reached (a connection
    refused or lost, a full disk), else None: such an error is the same on every feed and
    every tick, so it is logged as that line, not as a traceback each time."""
    if isinstance(exc, OperationalError | InterfaceError):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return (
            f"database unavailable: {type(exc.orig or exc).__name__}: {first[0] if first else ''}"
        )
    return None
