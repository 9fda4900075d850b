"""System-wide artifacts: the matrix of their results per host, their runs with each host's
result, and the claims (artifact x site) that keep two runs apart.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "artifact_cells",
        sa.Column("artifact", sa.String(255), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("deployed_version", sa.String(64)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("artifact", "site", "host", name="pk_artifact_cells"),
        sa.CheckConstraint(
            "status IN ('success', 'failed', 'unchanged')",
            name="ck_artifact_cells_status_valid",
        ),
    )
    op.create_table(
        "artifact_runs",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", WHEN, nullable=False),
        sa.Column("finished_at", WHEN),
        sa.Column("controller_id", sa.String(64)),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_runs"),
    )
    op.create_table(
        "artifact_results",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("artifact", sa.String(255), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_artifact_results"),
        sa.ForeignKeyConstraint(
            ["run_id"], ["artifact_runs.id"], name="fk_artifact_results_run_id_artifact_runs"
        ),
    )
    op.create_index("ix_artifact_results_run_id", "artifact_results", ["run_id"])
    op.create_table(
        "artifact_claims",
        sa.Column("artifact", sa.String(255), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("controller_id", sa.String(64), nullable=False),
        sa.Column("claimed_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("artifact", "site", name="pk_artifact_claims"),
    )


def downgrade() -> None:
    op.drop_table("artifact_claims")
    op.drop_index("ix_artifact_results_run_id", table_name="artifact_results")
    op.drop_table("artifact_results")
    op.drop_table("artifact_runs")
    op.drop_table("artifact_cells")
