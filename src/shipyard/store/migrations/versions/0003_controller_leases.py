"""Controller leases: who runs a deployment or rollout, and until when the database holds it theirs.

Revision ID: 0003
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "controllers",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("boot_id", sa.String(64), nullable=False),
        sa.Column("pid_namespace", sa.String(64), nullable=False),
        sa.Column("process_start", sa.BigInteger(), nullable=False),
        # Seconds since the epoch by the database's clock: controllers' clocks never decide.
        sa.Column("lease_expires", sa.Float(precision=53), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_controllers"),
    )
    op.create_index("ix_controllers_lease_expires", "controllers", ["lease_expires"])
    # Nullable: rows written before this migration have no controller and keep the old rule.
    op.add_column("deployments", sa.Column("controller_id", sa.String(64)))
    op.add_column("rollouts", sa.Column("controller_id", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as table:
        table.drop_column("controller_id")
    with op.batch_alter_table("deployments") as table:
        table.drop_column("controller_id")
    op.drop_index("ix_controllers_lease_expires", "controllers")
    op.drop_table("controllers")
