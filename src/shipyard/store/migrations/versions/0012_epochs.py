"""Fencing epochs: each registration of a controller gets a number larger than any before it,
which its host steps carry so that a host refuses a controller older than one that touched it;
and the store's own identity (a random id made here, once), which a host keeps with the epoch,
so that a new store (another database for the same hosts) starts afresh instead of being
refused by every host.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("controllers") as table:
        table.add_column(sa.Column("epoch", sa.BigInteger(), nullable=False, server_default="0"))
    identity = op.create_table(
        "store_identity",
        sa.Column("id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_store_identity"),
    )
    op.bulk_insert(identity, [{"id": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("store_identity")
    with op.batch_alter_table("controllers") as table:
        table.drop_column("epoch")
