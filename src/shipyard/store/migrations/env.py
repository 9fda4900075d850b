"""Alembic's entry point: migrates the connection Shipyard hands over, never one from a URL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from shipyard.store.tables import metadata

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection) or context.is_offline_mode():
    raise RuntimeError("run migrations through shipyard.store.migrations.upgrade(engine)")

context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
