"""Instance lifecycle: each instance's `lifecycle` (active, disabled, deleted) and the
deployment kinds of the lifecycle commands (disable, enable, delete).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# 0001 named it so (its name went through the naming convention once more).
OLD_KIND_CHECK = "ck_deployments_ck_deployments_kind_valid"
OLD_KINDS = "kind IN ('deploy', 'rollback')"
NEW_KINDS = "kind IN ('deploy', 'rollback', 'disable', 'enable', 'delete')"


def upgrade() -> None:
    with op.batch_alter_table("instances") as table:  # on SQLite: rebuilds the table
        table.add_column(
            sa.Column("lifecycle", sa.String(16), nullable=False, server_default="active")
        )
        table.create_check_constraint(
            op.f("ck_instances_lifecycle_valid"), "lifecycle IN ('active', 'disabled', 'deleted')"
        )
    with op.batch_alter_table("deployments") as table:
        table.drop_constraint(op.f(OLD_KIND_CHECK), type_="check")
        table.create_check_constraint(op.f("ck_deployments_kind_valid"), NEW_KINDS)


def downgrade() -> None:
    with op.batch_alter_table("deployments") as table:
        table.drop_constraint(op.f("ck_deployments_kind_valid"), type_="check")
        table.create_check_constraint(op.f(OLD_KIND_CHECK), OLD_KINDS)
    with op.batch_alter_table("instances") as table:
        table.drop_constraint(op.f("ck_instances_lifecycle_valid"), type_="check")
        table.drop_column("lifecycle")
