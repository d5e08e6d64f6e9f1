"""The schema is made only by migrations; they must agree with the models exactly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from monitor.db import Database
from monitor.models import Base, declared


def test_migrations_match_models(database: Database) -> None:
    with database.engine.connect() as conn:
        ctx = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": declared}
        )
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == []


def test_schema_head_constant_is_the_newest_migration(database: Database) -> None:
    from alembic.script import ScriptDirectory

    from monitor.db import SCHEMA_HEAD, alembic_config, schema_revision

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == SCHEMA_HEAD
    assert schema_revision(database.engine) == SCHEMA_HEAD


def test_upgrade_is_idempotent_and_creates_every_table(database: Database) -> None:
    database.upgrade()  # a second run must be a no-op, as on every start
    tables = set(inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables
    assert "alembic_version" in tables


def test_workers_starting_together_migrate_once(db_url: str) -> None:
    """Several processes upgrading one fresh database at once must all succeed."""
    code = "import sys; from monitor.db import Database; Database(sys.argv[1]).upgrade()"
    procs = [
        subprocess.Popen([sys.executable, "-c", code, db_url], stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), p.stderr.read() if p.stderr else "") for p in procs]
    assert [rc for rc, _ in results] == [0, 0, 0, 0], [err[-500:] for _, err in results]


def test_a_database_address_with_percent_signs_migrates(tmp_path: Path) -> None:
    """An escaped character in a password (p%40ss) or a "%" in a path is text to Alembic,
    not ConfigParser interpolation (which failed and printed the address)."""
    from monitor.db import SCHEMA_HEAD, Database, schema_revision

    db = Database(f"sqlite:///{tmp_path / '50%off' / 'monitor.db'}")
    db.upgrade()
    assert schema_revision(db.engine) == SCHEMA_HEAD
    db.dispose()


def test_every_migration_keeps_the_rows_and_links_stored_before_it(db_url: str) -> None:
    """Each migration from the first on, run over a database holding data: no row is
    lost and no link broken (on SQLite, batch mode's copy of a table fires the foreign
    keys' ON DELETE when it drops the old one: it once unlinked every entry)."""
    from alembic.script import ScriptDirectory
    from sqlalchemy import text

    from monitor.db import alembic_config, upgrade

    engine = Database(db_url).engine  # as the monitor connects: foreign keys enforced
    revisions = [r.revision for r in ScriptDirectory.from_config(alembic_config()).walk_revisions()]
    revisions.reverse()  # oldest first
    upgrade(engine, revisions[0])
    with engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO feeds (id, url, enabled, origin, interval_seconds, error_count, "
                "created_at) VALUES (1, 'https://a.example/feed', true, 'config', 600, 0, "
                "'2026-01-01 00:00:00')"
            )
        )
        c.execute(
            text(
                "INSERT INTO developments (id, title, topics, score, state, first_seen_at, "
                "last_seen_at, event_at) VALUES (1, 'An event', '[\"syria\"]', 1.5, 'alerted', "
                "'2026-01-01 00:00:00', '2026-01-01 00:00:00', '2026-01-01 00:00:00')"
            )
        )
        for n, lang in enumerate(("en", "ru")):
            c.execute(
                text(
                    "INSERT INTO entries (id, feed_id, guid, title, summary_html, text, language, "
                    "content_hash, published_at, first_seen_at, last_seen_at, revision, score, "
                    "relevant, date_estimated, development_id) VALUES (:id, 1, :guid, 'A report', "
                    "'', 'text', :lang, :hash, '2026-01-01 00:00:00', '2026-01-01 00:00:00', "
                    "'2026-01-01 00:00:00', 1, 1.5, true, false, 1)"
                ),
                {"id": n + 1, "guid": f"g{n}", "lang": lang, "hash": f"h{n}"},
            )
    for revision in revisions[1:]:
        upgrade(engine, revision)
        with engine.connect() as c:
            linked = c.scalar(text("SELECT count(*) FROM entries WHERE development_id = 1"))
            feeds = c.scalar(text("SELECT count(*) FROM feeds"))
        assert (linked, feeds) == (2, 1), f"after migration {revision}"
    with engine.connect() as c:
        languages = c.scalar(text("SELECT languages FROM developments WHERE id = 1"))
    assert "en" in str(languages) and "ru" in str(languages)  # backfilled by 0010
    engine.dispose()


def test_pending_entries_index_is_partial(database: Database) -> None:
    """models.py names ix_entries_pending without its condition (it would load both
    dialects in every process); the migration must still have made it partial."""
    indexes = {i["name"]: i for i in inspect(database.engine).get_indexes("entries")}
    where = indexes["ix_entries_pending"]["dialect_options"][
        f"{database.engine.dialect.name}_where"
    ]
    assert "join_reason" in str(where)
    assert "'pending'" in str(where)


def test_the_command_line_loads_no_dialect_it_does_not_use() -> None:
    """Every command imports the models; on SQLite nothing of PostgreSQL's is loaded."""
    code = (
        "import sys, monitor.cli, monitor.pipeline; "
        "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy.dialects.postgresql')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
