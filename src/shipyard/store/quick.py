"""The reads of `status` and `plan` from a SQLite store, through the standard library's driver.

Importing SQLAlchemy and building the store's engine costs about 0.4 s, more than the reads
themselves; `status` and `plan` of a SQLite project need neither. `open_quick` answers only
when that is exactly what `open_store` would have answered: a local SQLite file at the newest
migration with nothing in flight (so recovery has nothing to finish). Otherwise it returns None
and the caller opens the store. The queries are those of `status.py`; a test holds both alike.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from shipyard.store.records import DeploymentStatus, InstanceStatus, StatusRow

VERSIONS = Path(__file__).parent / "migrations" / "versions"
# How a migration file names itself and its parent: `revision: str = "0003"`.
REVISION_LINE = re.compile(r'^(down_revision|revision)\b[^=\n]*=\s*(?:"([^"]*)"|None)\s*$', re.M)
SQLITE_PREFIX = "sqlite:///"

_STATUS_ROWS = """
SELECT i.name, i.service, i.host, i.site, i.status, i.deployed_revision, i.deployed_at,
       d.id, d.status, d.kind, d.actor, d.started_at, d.finished_at, d.error
FROM instances AS i LEFT OUTER JOIN deployments AS d ON d.id = i.last_deployment_id
"""
_IN_FLIGHT = """
SELECT (SELECT count(*) FROM deployments WHERE status IN ('pending', 'in_progress'))
     + (SELECT count(*) FROM rollouts WHERE status = 'in_progress')
"""


def head_from_files() -> str | None:
    """The newest migration, from the files' `revision` and `down_revision` lines; None when
    they do not name exactly one head (Alembic decides then)."""
    revisions, parents = set(), set()
    for path in VERSIONS.glob("*.py"):
        found = {m[1]: m[2] for m in REVISION_LINE.finditer(path.read_text())}
        if not found.get("revision"):
            return None
        revisions.add(found["revision"])
        parents.add(found.get("down_revision"))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


@dataclass
class QuickReads:
    """Reads of one SQLite store, read-only; close it (or use it as a context manager)."""

    conn: sqlite3.Connection

    def status_rows(self, *, site: str | None = None) -> list[StatusRow]:
        """As Store.status_rows."""
        query = (
            _STATUS_ROWS + (" WHERE i.site = ?" if site is not None else "") + " ORDER BY i.name"
        )
        instance_status = {s.value: s for s in InstanceStatus}
        deployment_status = {s.value: s for s in DeploymentStatus}
        return [
            StatusRow(
                r[0], r[1], r[2], r[3], instance_status[r[4]], r[5], _utc(r[6]),
                r[7], deployment_status.get(r[8]), r[9], r[10], _utc(r[11]), _utc(r[12]), r[13],
            )
            for r in self.conn.execute(query, () if site is None else (site,))
        ]  # fmt: skip

    def deployed_revisions(self) -> dict[str, str]:
        """As Store.deployed_revisions."""
        query = "SELECT name, deployed_revision FROM instances WHERE deployed_revision IS NOT NULL"
        return dict(self.conn.execute(query).fetchall())

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> QuickReads:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_quick(url: str) -> QuickReads | None:
    """Quick reads of the SQLite store at `url`, or None when the store must be opened (not a
    plain SQLite file URL, no file yet, not at the newest migration, something in flight)."""
    if not url.startswith(SQLITE_PREFIX) or "?" in url:
        return None
    path = Path(unquote(url[len(SQLITE_PREFIX) :]))
    head = head_from_files()
    if not path.is_file() or head is None:
        return None
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error:
        return None
    try:
        stored = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        if stored != [(head,)] or conn.execute(_IN_FLIGHT).fetchone() != (0,):
            conn.close()
            return None
    except sqlite3.Error:  # not a store, or locked past the timeout: the store says why
        conn.close()
        return None
    return QuickReads(conn)


def _utc(value: str | None) -> datetime | None:
    """A timestamp as SQLAlchemy keeps it in SQLite (`2026-12-02 01:02:03.000004`), in UTC."""
    if value is None:
        return None
    found = datetime.fromisoformat(value)
    return found.replace(tzinfo=UTC) if found.tzinfo is None else found.astimezone(UTC)
