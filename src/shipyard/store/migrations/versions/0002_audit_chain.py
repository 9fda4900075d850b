"""The audit log becomes a hash chain: each row stores its previous row's hash and its own.

Rows written before this migration are chained here, in id order (store/chain.py says how).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipyard.store import chain

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

APPEND_ONLY = "audit rows are append-only: they are never updated or deleted"
NO_REPLACE = "audit rows are append-only: an existing row is never replaced"
AUDIT = sa.table(
    "audit", sa.column("id", sa.BigInteger()), sa.column("prev_hash"), sa.column("hash")
)


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.add_column("audit", sa.Column("prev_hash", sa.String(64)))
    op.add_column("audit", sa.Column("hash", sa.String(64)))
    suspend_append_only(dialect)
    chain_existing_rows()
    with op.batch_alter_table("audit") as batch:  # on SQLite: rebuilds the table
        batch.alter_column("prev_hash", existing_type=sa.String(64), nullable=False)
        batch.alter_column("hash", existing_type=sa.String(64), nullable=False)
    restore_append_only(dialect)
    if dialect == "sqlite":
        # INSERT OR REPLACE deletes the old row without firing DELETE triggers: refuse it too.
        op.execute(
            "CREATE TRIGGER audit_no_replace BEFORE INSERT ON audit"
            " WHEN EXISTS (SELECT 1 FROM audit WHERE id = NEW.id)"
            f" BEGIN SELECT RAISE(ABORT, '{NO_REPLACE}'); END"
        )


def chain_existing_rows() -> None:
    bind = op.get_bind()
    found = list(chain.stored_hashes(bind, link=chain.GENESIS))
    prev = chain.GENESIS
    for row_id, _, _, digest in found:
        if digest is None:
            raise RuntimeError(f"audit row {row_id} cannot be read: it cannot be chained")
        bind.execute(AUDIT.update().where(AUDIT.c.id == row_id).values(prev_hash=prev, hash=digest))
        prev = digest


def suspend_append_only(dialect: str) -> None:
    """Drop (SQLite) or disable (PostgreSQL) the append-only triggers while we fill rows."""
    if dialect == "sqlite":
        op.execute("DROP TRIGGER audit_no_update")
        op.execute("DROP TRIGGER audit_no_delete")
    else:
        op.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_update_delete")


def restore_append_only(dialect: str) -> None:
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit"
                f" BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
    else:
        op.execute("ALTER TABLE audit ENABLE TRIGGER audit_no_update_delete")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER audit_no_replace")
    suspend_append_only(dialect)
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("hash")
        batch.drop_column("prev_hash")
    restore_append_only(dialect)
