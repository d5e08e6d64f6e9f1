"""desk: developments know their reports' languages (the desk's language filter read a
million entries; now it reads the developments, as the topic filter does), and an index
of developments by first sight carrying state, topics and languages, which the filters,
the counts and the chart read (75 ms at 100,000 developments became 16)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = {
    "sqlite": "UPDATE developments SET languages = coalesce((SELECT json_group_array(language) "
    "FROM (SELECT DISTINCT language FROM entries WHERE development_id = developments.id "
    "AND language IS NOT NULL ORDER BY language)), '[]')",
    "postgresql": "UPDATE developments SET languages = coalesce((SELECT json_agg(DISTINCT "
    "e.language ORDER BY e.language) FROM entries e WHERE e.development_id = developments.id "
    "AND e.language IS NOT NULL), '[]'::json)",
}


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    # A plain ALTER TABLE ADD COLUMN (a constant default), never batch mode's copy of the
    # table: on SQLite dropping the old copy would fire the foreign keys' ON DELETE and
    # unlink every entry and alert from its development.
    op.add_column(
        "developments", sa.Column("languages", sa.JSON(), nullable=False, server_default="[]")
    )
    op.execute(BACKFILL[dialect])
    if dialect == "sqlite":
        op.execute(
            "CREATE INDEX ix_developments_charted ON developments "
            "(first_seen_at, state, topics, languages)"
        )
    else:  # json has no btree order: carried, not keyed
        op.execute(
            "CREATE INDEX ix_developments_charted ON developments (first_seen_at) "
            "INCLUDE (state, topics, languages)"
        )


def downgrade() -> None:
    op.drop_index("ix_developments_charted", table_name="developments")
    op.drop_column("developments", "languages")
