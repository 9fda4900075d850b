"""Accounts: users with roles (and sites), tokens that belong to a user, browser sessions, and
the failed sign-ins a lockout is decided from.

Tokens of a store from before accounts (the server's admin token, role "admin") become tokens
of a user `admin` with the admin role; a token without an expiry gets one a year from now.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255)),
        sa.Column("access", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("disabled_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("name", name="uq_users_name"),
    )
    conn = op.get_bind()
    now = datetime.now(UTC)
    old = conn.execute(sa.text("SELECT id, role, expires_at FROM api_tokens")).all()
    admin_id = str(uuid.uuid4())
    if old:
        access = json.dumps({"roles": ["admin"], "sites": None}, sort_keys=True)
        conn.execute(
            sa.text(
                "INSERT INTO users (id, name, password_hash, access, created_at, created_by,"
                " changed_at) VALUES (:id, 'admin', NULL, :access, :now, 'migration', :now)"
            ),
            {"id": admin_id, "access": access, "now": now},
        )
    with op.batch_alter_table("api_tokens") as table:
        table.add_column(sa.Column("user_id", sa.String(64)))
        table.add_column(sa.Column("read_only", sa.Boolean()))
    for token_id, role, expires_at in old:
        conn.execute(
            sa.text(
                "UPDATE api_tokens SET user_id = :user, read_only = :read_only,"
                " expires_at = :expires WHERE id = :id"
            ),
            {
                "user": admin_id,
                "read_only": role != "admin",
                "expires": expires_at or now + timedelta(days=365),
                "id": token_id,
            },
        )
    with op.batch_alter_table("api_tokens") as table:
        table.alter_column("user_id", existing_type=sa.String(64), nullable=False)
        table.alter_column("read_only", existing_type=sa.Boolean(), nullable=False)
        table.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        table.drop_column("role")
        table.create_foreign_key("fk_api_tokens_user_id_users", "users", ["user_id"], ["id"])
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "user_sessions",
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("csrf_hash", sa.String(64), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("hash", name="pk_user_sessions"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_sessions_user_id_users"),
    )
    op.create_index("ix_user_sessions_user_id", "user_sessions", ["user_id"])
    op.create_table(
        "login_failures",
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("key", name="pk_login_failures"),
    )


def downgrade() -> None:
    op.drop_table("login_failures")
    op.drop_index("ix_user_sessions_user_id", "user_sessions")
    op.drop_table("user_sessions")
    op.drop_index("ix_api_tokens_user_id", "api_tokens")
    with op.batch_alter_table("api_tokens") as table:
        table.drop_constraint("fk_api_tokens_user_id_users", type_="foreignkey")
        table.add_column(sa.Column("role", sa.String(32), nullable=False, server_default="admin"))
        table.alter_column("expires_at", existing_type=sa.DateTime(timezone=True), nullable=True)
        table.drop_column("read_only")
        table.drop_column("user_id")
    op.drop_table("users")
