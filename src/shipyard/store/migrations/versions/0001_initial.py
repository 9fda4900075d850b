"""The first schema: instances, rollouts, deployments, an append-only audit log, events.

Revision ID: 0001
Revises:
Create Date: 2024-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
ACTIVE_WHERE = sa.text("status IN ('pending', 'in_progress')")
APPEND_ONLY = "audit rows are append-only: they are never updated or deleted"


def when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def check(table: str, column: str, values: tuple[str, ...]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{v}'" for v in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}_valid")


def upgrade() -> None:
    op.create_table(
        "instances",
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("service", sa.String(255), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("site", sa.String(255), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="none"),
        sa.Column("deployed_revision", sa.String(128)),
        sa.Column("deployed_config", sa.Text()),
        sa.Column("deployed_secrets", sa.Text()),
        sa.Column("deployed_at", when()),
        sa.Column("deployed_deployment_id", sa.String(64)),
        sa.Column("last_deployment_id", sa.String(64)),
        sa.PrimaryKeyConstraint("name", name="pk_instances"),
        check("instances", "status", ("none", "pending", "in_progress", "success", "failed")),
    )
    op.create_index("ix_instances_site", "instances", ["site"])

    op.create_table(
        "rollouts",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("strategy", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", when(), nullable=False),
        sa.Column("finished_at", when()),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rollouts"),
        check("rollouts", "status", ("in_progress", "success", "failed")),
    )

    op.create_table(
        "deployments",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("revision", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("rollout_id", sa.String(64)),
        sa.Column("started_at", when(), nullable=False),
        sa.Column("finished_at", when()),
        sa.Column("error", sa.Text()),
        sa.Column("owner_host", sa.String(255), nullable=False),
        sa.Column("owner_pid", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", when(), nullable=False),
        sa.Column("config", sa.Text()),
        sa.Column("secrets", sa.Text()),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_deployments"),
        sa.ForeignKeyConstraint(
            ["instance"], ["instances.name"], name="fk_deployments_instance_instances"
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"], ["rollouts.id"], name="fk_deployments_rollout_id_rollouts"
        ),
        check(
            "deployments",
            "status",
            ("pending", "in_progress", "success", "failed", "skipped"),
        ),
        check("deployments", "kind", ("deploy", "rollback")),
    )
    # The concurrency rule: at most one pending or in-progress deployment per instance.
    op.create_index(
        "uq_deployments_active_instance",
        "deployments",
        ["instance"],
        unique=True,
        sqlite_where=ACTIVE_WHERE,
        postgresql_where=ACTIVE_WHERE,
    )
    op.create_index("ix_deployments_instance_started_at", "deployments", ["instance", "started_at"])
    op.create_index("ix_deployments_status", "deployments", ["status"])
    op.create_index("ix_deployments_rollout_id", "deployments", ["rollout_id"])

    op.create_table(
        "audit",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("at", when(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=False),
        sa.Column("result", sa.String(32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit"),
    )
    op.create_index("ix_audit_target_id", "audit", ["target", "id"])
    op.create_index("ix_audit_at", "audit", ["at"])
    create_append_only_triggers(op.get_bind().dialect.name)

    op.create_table(
        "events",
        sa.Column("id", AUTO_ID, autoincrement=True, nullable=False),
        sa.Column("at", when(), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("instance", sa.String(255)),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
    )


def create_append_only_triggers(dialect: str) -> None:
    """Make the database itself refuse to change or remove audit rows."""
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_no_{event.lower()} BEFORE {event} ON audit"
                f" BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE FUNCTION shipyard_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS"
            f" $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY}'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_no_update_delete BEFORE UPDATE OR DELETE ON audit"
            " FOR EACH ROW EXECUTE FUNCTION shipyard_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit"
            " FOR EACH STATEMENT EXECUTE FUNCTION shipyard_audit_append_only()"
        )
    else:
        raise NotImplementedError(f"no append-only triggers for {dialect}")


def downgrade() -> None:
    op.drop_table("events")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER audit_no_truncate ON audit")
        op.execute("DROP TRIGGER audit_no_update_delete ON audit")
        op.execute("DROP FUNCTION shipyard_audit_append_only()")
    op.drop_table("audit")
    op.drop_table("deployments")
    op.drop_table("rollouts")
    op.drop_table("instances")
