"""search: a full-text index of stored entries (SQLite FTS5, PostgreSQL tsvector + GIN),
filled behind the writers by monitor/store/search.py, kept right on revision and deletion

The index is not written as entries are stored (that would cost a cold poll a third more
on SQLite): `search_state.indexed_upto` says how far it has caught up, and the desk
catches up in the background. Revised and deleted entries are kept right by triggers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE = [
    # External content: the index keeps no copy of the text (it reads entries').
    "CREATE VIRTUAL TABLE entries_fts USING fts5(title, text, content='entries', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    # FTS5 must be told a row's old words to forget them: only for rows it has indexed.
    "CREATE TRIGGER entries_fts_update AFTER UPDATE OF title, text ON entries "
    "WHEN old.id <= (SELECT indexed_upto FROM search_state WHERE id = 1) BEGIN "
    "INSERT INTO entries_fts(entries_fts, rowid, title, text) "
    "VALUES ('delete', old.id, old.title, old.text); "
    "INSERT INTO entries_fts(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER entries_fts_delete AFTER DELETE ON entries "
    "WHEN old.id <= (SELECT indexed_upto FROM search_state WHERE id = 1) BEGIN "
    "INSERT INTO entries_fts(entries_fts, rowid, title, text) "
    "VALUES ('delete', old.id, old.title, old.text); END",
]
# 'simple': no stemming, so English and Russian are read alike; queries match prefixes.
POSTGRESQL = [
    "CREATE TABLE entry_search (entry_id integer PRIMARY KEY "
    "REFERENCES entries(id) ON DELETE CASCADE, document tsvector NOT NULL)",
    "CREATE INDEX ix_entry_search_document ON entry_search USING gin (document)",
    "CREATE FUNCTION entry_search_update() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "UPDATE entry_search SET document = to_tsvector('simple', coalesce(NEW.title, '') || ' ' "
    "|| coalesce(NEW.text, '')) WHERE entry_id = NEW.id; RETURN NULL; END $$",
    "CREATE TRIGGER entry_search_update AFTER UPDATE OF title, text ON entries "
    "FOR EACH ROW EXECUTE FUNCTION entry_search_update()",
]


def upgrade() -> None:
    op.create_table(
        "search_state",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("indexed_upto", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_search_state")),
    )
    op.execute("INSERT INTO search_state (id, indexed_upto) VALUES (1, 0)")
    dialect = op.get_bind().dialect.name
    for statement in SQLITE if dialect == "sqlite" else POSTGRESQL:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER entries_fts_delete")
        op.execute("DROP TRIGGER entries_fts_update")
        op.execute("DROP TABLE entries_fts")
    else:
        op.execute("DROP TRIGGER entry_search_update ON entries")
        op.execute("DROP FUNCTION entry_search_update()")
        op.execute("DROP TABLE entry_search")
    op.drop_table("search_state")
