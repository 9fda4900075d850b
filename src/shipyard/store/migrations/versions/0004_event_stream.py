"""The typed event stream and step logs: events get their fields as columns; host output per step.

Rows written before this migration keep `kind`, `instance` and `payload` and have no phase; the
store reads them as events all the same (rows.event).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

EVENT_COLUMNS = (
    ("phase", 32),
    ("rollout_id", 64),
    ("deployment_id", 64),
    ("site", 255),
    ("host", 255),
    ("result", 32),
)


def upgrade() -> None:
    for name, length in EVENT_COLUMNS:
        op.add_column("events", sa.Column(name, sa.String(length)))
    op.add_column("events", sa.Column("detail", sa.Text()))
    op.create_index("ix_events_rollout_id_id", "events", ["rollout_id", "id"])
    op.create_table(
        "step_logs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("deployment_id", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(64), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("exit_status", sa.Integer()),
        sa.Column("output", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_step_logs"),
    )
    op.create_index("ix_step_logs_deployment_id_seq", "step_logs", ["deployment_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_step_logs_deployment_id_seq", "step_logs")
    op.drop_table("step_logs")
    op.drop_index("ix_events_rollout_id_id", "events")
    with op.batch_alter_table("events") as table:
        table.drop_column("detail")
        for name, _ in reversed(EVENT_COLUMNS):
            table.drop_column(name)
