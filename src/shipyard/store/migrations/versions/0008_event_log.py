"""The site event log: each event's subject, severity, source and one-line message as columns,
the indexes of its queries (a site's newest first; the purge by age) and a keyword index over
message and source in the database's own text search (SQLite FTS5, kept in step by triggers;
PostgreSQL a GIN index over a generated tsvector column).

Rows already stored get their severity, source and message from their columns here, by the
same rules as events.Event (a row from before 0004, with no phase, is "info" and its kind).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

# What store/eventlog.py searches: on SQLite an FTS5 table, on PostgreSQL a tsvector column
# the database computes as each event is written (testing a stored one is cheap, where the
# expression costs a regexp per event), and its GIN index.
SEARCH_TABLE = "events_search"
PG_COLUMN = "events_search_doc"
PG_SEARCH = (
    "to_tsvector('simple'::regconfig, regexp_replace(coalesce(message, '') || ' ' ||"
    " coalesce(source, ''), '[[:punct:]]+', ' ', 'g'))"
)
ERRORS = "('failed', 'offline', 'failing', 'interrupted', 'error')"
WARNINGS = "('skipped', 'cancelled', 'degraded', 'unknown', 'rolled-back', 'drifted')"
BACKFILL = f"""
UPDATE events SET
  severity = CASE
    WHEN phase = 'host-error' OR result IN {ERRORS} THEN 'error'
    WHEN phase IN ('drift', 'rolling-back') OR result IN {WARNINGS} THEN 'warning'
    ELSE 'info' END,
  source = CASE
    WHEN instance IS NOT NULL THEN 'instance ' || instance
    WHEN host IS NOT NULL THEN 'host ' || host
    WHEN rollout_id IS NOT NULL THEN 'rollout ' || rollout_id
    ELSE 'system' END,
  message = coalesce(phase, kind)
    || CASE WHEN result IS NULL THEN '' ELSE ' ' || result END
    || CASE WHEN detail IS NULL OR detail = '' THEN ''
       ELSE ': ' || replace(replace(substr(detail, 1, 500), char(13), ' '), char(10), ' ') END
"""


def upgrade() -> None:
    with op.batch_alter_table("events") as table:
        table.add_column(sa.Column("subject", sa.String(255)))
        table.add_column(
            sa.Column("severity", sa.String(16), nullable=False, server_default="info")
        )
        table.add_column(sa.Column("source", sa.String(400)))
        table.add_column(sa.Column("message", sa.Text()))
    backfill = BACKFILL
    if op.get_bind().dialect.name == "postgresql":
        backfill = backfill.replace("char(13)", "chr(13)").replace("char(10)", "chr(10)")
    op.execute(backfill)
    op.create_index("ix_events_site_id", "events", ["site", "id"])
    op.create_index("ix_events_at", "events", ["at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE events ADD COLUMN {PG_COLUMN} tsvector"
            f" GENERATED ALWAYS AS ({PG_SEARCH}) STORED"
        )
        # fastupdate off: a query never scans a pending list that writers left (a p99 of seconds).
        op.execute(
            f"CREATE INDEX ix_events_search ON events USING gin ({PG_COLUMN})"
            " WITH (fastupdate = off)"
        )
        return
    # An external-content FTS5 table: it keeps only the index; the text stays in `events`.
    op.execute(
        f"CREATE VIRTUAL TABLE {SEARCH_TABLE} USING fts5(message, source,"
        " content='events', content_rowid='id', tokenize='unicode61 remove_diacritics 0')"
    )
    op.execute(
        f"CREATE TRIGGER events_search_insert AFTER INSERT ON events BEGIN"
        f" INSERT INTO {SEARCH_TABLE}(rowid, message, source)"
        f" VALUES (new.id, new.message, new.source); END"
    )
    op.execute(
        f"CREATE TRIGGER events_search_delete AFTER DELETE ON events BEGIN"
        f" INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}, rowid, message, source)"
        f" VALUES ('delete', old.id, old.message, old.source); END"
    )
    op.execute(
        f"CREATE TRIGGER events_search_update AFTER UPDATE OF message, source ON events BEGIN"
        f" INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}, rowid, message, source)"
        f" VALUES ('delete', old.id, old.message, old.source);"
        f" INSERT INTO {SEARCH_TABLE}(rowid, message, source)"
        f" VALUES (new.id, new.message, new.source); END"
    )
    op.execute(f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_events_search")
        op.execute(f"ALTER TABLE events DROP COLUMN {PG_COLUMN}")
    else:
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER events_search_{trigger}")
        op.execute(f"DROP TABLE {SEARCH_TABLE}")
    op.drop_index("ix_events_at", "events")
    op.drop_index("ix_events_site_id", "events")
    with op.batch_alter_table("events") as table:
        for name in ("message", "source", "severity", "subject"):
            table.drop_column(name)
