"""The reads of `status` and `plan`, straight through the database's driver.

Importing SQLAlchemy and building the store's engine costs about 0.4 s, more than the reads
themselves; `status` and `plan` need neither. `open_quick` answers only when that is exactly
what `open_store` would have answered: a SQLite file or a PostgreSQL database (psycopg, the
driver the store uses) at the newest migration with nothing in flight, so that recovery has
nothing to finish. Otherwise it returns None and the caller opens the store. The store's own
`status_rows` and `deployed_revisions` run these same queries on its connection (`status.py`);
a test holds both paths alike on both databases.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote

from shipyard.store.records import DeploymentStatus, InstanceStatus, StatusRow, as_utc

VERSIONS = Path(__file__).parent / "migrations" / "versions"
# How a migration file names itself and its parent: `revision: str = "0003"`.
REVISION_LINE = re.compile(r'^(down_revision|revision)\b[^=\n]*=\s*(?:"([^"]*)"|None)\s*$', re.M)
SQLITE_PREFIX = "sqlite:///"
POSTGRESQL_PREFIXES = ("postgresql://", "postgresql+psycopg://")
MMAP_BYTES = 256 * 1024 * 1024  # address space only: SQLite maps no more than the file

_STATUS_ROWS = """
SELECT i.name, i.service, i.host, i.site, i.status, i.deployed_revision, i.deployed_at,
       d.id, d.status, d.kind, d.actor, d.started_at, d.finished_at, d.error, i.lifecycle
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


class Connection(Protocol):
    """What both drivers' connections offer (DB-API)."""

    def execute(self, query: Any, params: Any = ..., /) -> Any: ...

    def close(self) -> None: ...


@dataclass
class QuickReads:
    """Reads of one store, read-only; close it (or use it as a context manager). `mark` is
    the driver's placeholder (`?` for sqlite3, `%s` for psycopg)."""

    conn: Connection
    mark: str = "?"

    def status_rows(self, *, site: str | None = None) -> list[StatusRow]:
        """As Store.status_rows."""
        where = f" WHERE i.site = {self.mark}" if site is not None else ""
        query = f"{_STATUS_ROWS}{where} ORDER BY i.name"
        instance_status = {s.value: s for s in InstanceStatus}
        deployment_status = {s.value: s for s in DeploymentStatus}
        utc = _Timestamps()
        return [
            StatusRow(
                r[0], r[1], r[2], r[3], instance_status[r[4]], r[5], utc.read(r[6]),
                r[7], deployment_status.get(r[8]), r[9], r[10], utc.read(r[11]),
                utc.read(r[12]), r[13], r[14],
            )
            for r in self.conn.execute(query, () if site is None else (site,)).fetchall()
        ]  # fmt: skip

    def deployed_revisions(self) -> dict[str, str]:
        """As Store.deployed_revisions."""
        query = "SELECT name, deployed_revision FROM instances WHERE deployed_revision IS NOT NULL"
        return dict(self.conn.execute(query).fetchall())

    def lifecycles(self) -> dict[str, str]:
        """As Store.lifecycles."""
        query = "SELECT name, lifecycle FROM instances WHERE lifecycle <> 'active'"
        return dict(self.conn.execute(query).fetchall())

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> QuickReads:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def open_quick(url: str) -> QuickReads | None:
    """Quick reads of the store at `url`, or None when the store must be opened (not a plain
    SQLite file or PostgreSQL URL, no file yet, not at the newest migration, something in
    flight, the database not answering: the store then says why)."""
    head = head_from_files()
    if head is None:
        return None
    if url.startswith(POSTGRESQL_PREFIXES):
        return _settled(_postgresql(url), head, "%s")
    if not url.startswith(SQLITE_PREFIX) or "?" in url:
        return None
    path = Path(unquote(url[len(SQLITE_PREFIX) :]))
    if not path.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        # Pages read through a memory map rather than a read() each: a fifth off a full scan.
        conn.execute(f"PRAGMA mmap_size = {MMAP_BYTES}")
    except sqlite3.Error:
        return None
    return _settled(conn, head, "?")


def sqlite_files(url: str) -> list[Path]:
    """The files of a SQLite store at `url` (the database and its journal's companions), with
    neither SQLAlchemy nor a connection; none for another database."""
    if not url.startswith(SQLITE_PREFIX):
        return []
    path = Path(unquote(url[len(SQLITE_PREFIX) :].partition("?")[0])).absolute()
    return [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))]


def _postgresql(url: str) -> Connection | None:
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://", 1)
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10)
        conn.read_only = True  # one read-only transaction: every read sees one snapshot
    except psycopg.Error:
        return None
    return conn


def _settled(conn: Connection | None, head: str, mark: str) -> QuickReads | None:
    """Reads of `conn` when its store is at `head` with nothing in flight; else None."""
    if conn is None:
        return None
    try:
        stored = list(conn.execute("SELECT version_num FROM alembic_version").fetchall())
        settled = stored == [(head,)] and tuple(conn.execute(_IN_FLIGHT).fetchone()) == (0,)
    except Exception:  # not a store yet, locked past the timeout, gone: the store says why
        settled = False
    if not settled:
        conn.close()
        return None
    return QuickReads(conn, mark)


class _Timestamps:
    """Stored timestamps in UTC, each distinct one read once: a bulk rollout finishes
    thousands of deployments at one time, so most of a status table's stamps repeat."""

    def __init__(self) -> None:
        self.seen: dict[str | datetime, datetime] = {}

    def read(self, value: str | datetime | None) -> datetime | None:
        """As SQLAlchemy keeps it in SQLite (`2026-12-02 01:02:03.000004`), or as psycopg reads
        it from PostgreSQL (aware)."""
        if value is None:
            return None
        found = self.seen.get(value)
        if found is None:
            found = as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))
            self.seen[value] = found
        return found
