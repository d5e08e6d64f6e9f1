"""pending entries: on-topic entries stored but not yet placed in a development

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("join_reason = 'pending'")


def upgrade() -> None:
    # A partial index: the few entries waiting for the end of their poll, found without
    # reading the table (both SQLite and PostgreSQL have partial indexes).
    op.create_index(
        "ix_entries_pending",
        "entries",
        ["published_at"],
        sqlite_where=_PENDING,
        postgresql_where=_PENDING,
    )


def downgrade() -> None:
    op.drop_index("ix_entries_pending", table_name="entries")
