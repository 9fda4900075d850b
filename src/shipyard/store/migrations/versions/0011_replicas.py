"""Replicas: the name of the server replica a controller belongs to (empty for a CLI), so that
recovery says which replica lost its lease.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("controllers") as table:
        table.add_column(sa.Column("replica", sa.String(255), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("controllers") as table:
        table.drop_column("replica")
