"""Health monitoring: the monitor's last view of each host and instance (state, since when,
the last error, drift).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "host_health",
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ok_at", sa.DateTime(timezone=True)),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("error", sa.Text()),
        sa.PrimaryKeyConstraint("host", name="pk_host_health"),
    )
    op.create_index("ix_host_health_site", "host_health", ["site"])
    op.create_table(
        "instance_health",
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("health", sa.String(16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("drift", sa.Text(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("instance", name="pk_instance_health"),
    )
    op.create_index("ix_instance_health_site", "instance_health", ["site"])


def downgrade() -> None:
    op.drop_index("ix_instance_health_site", "instance_health")
    op.drop_table("instance_health")
    op.drop_index("ix_host_health_site", "host_health")
    op.drop_table("host_health")
