"""feeds: WebSub subscriptions (the hub a feed names, its own address, this monitor's
secret, state and lease end)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 23:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("websub_hub", sa.String(2048)),
    ("websub_topic", sa.String(2048)),
    ("websub_secret", sa.String(64)),
    ("websub_state", sa.String(20)),
    ("websub_expires_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Plain ADD COLUMNs: batch mode's copy of feeds would cascade-delete every entry.
    for name, type_ in COLUMNS:
        op.add_column("feeds", sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("feeds", name)
