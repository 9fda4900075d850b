"""Database engines for the store: a SQLite file by default, PostgreSQL when configured."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from shipyard.errors import StoreError
from shipyard.masking import NO_SECRETS, Masker
from shipyard.store.places import STATE_DIRECTORY

# Concurrent Shipyard processes wait this long for SQLite's write lock rather than fail.
BUSY_TIMEOUT_MS = 30_000
# Execution option marking a connection that only reads (SQLite then begins a deferred transaction).
READ_ONLY = "shipyard_read_only"
# Where an engine keeps the masker its free-text columns use (see tables.MaskedText).
MASKER_ATTRIBUTE = "shipyard_masker"
# The store holds deployment history and secret fingerprints: only its owner reads it.
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
# SQLite's companions of a database file in WAL mode; SQLite creates them with the file's mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def parse_url(url: str) -> URL:
    """The URL as SQLAlchemy reads it; PostgreSQL URLs get the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise StoreError(f"not a database URL: {url!r}") from exc
    backend = parsed.get_backend_name()
    if backend == "postgresql" and parsed.drivername == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if backend not in ("sqlite", "postgresql"):
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(f"unsupported database {shown}: use sqlite:///PATH or postgresql://...")
    return parsed


def sqlite_path(url: str) -> Path | None:
    """The file behind a SQLite URL; None for PostgreSQL or an in-memory database."""
    parsed = parse_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def prepare_sqlite_file(path: Path) -> None:
    """Make the store's directory (700) and its empty database file (600) before SQLite does.

    SQLite creates the file 644 and gives its WAL and shared-memory files the same mode, so the
    file is made first, by us. A store left readable by an older Shipyard is tightened; a
    directory we did not make is left alone unless it is Shipyard's own `.shipyard`.
    """
    try:
        _make_private(path)
    except OSError as exc:
        raise StoreError(f"cannot create the state store at {path}: {exc}") from exc


def _make_private(path: Path) -> None:
    directory = path.parent
    try:
        directory.mkdir(mode=DIRECTORY_MODE)
    except FileNotFoundError:
        directory.parent.mkdir(parents=True, exist_ok=True)
        directory.mkdir(mode=DIRECTORY_MODE, exist_ok=True)
    except FileExistsError:
        if directory.name == STATE_DIRECTORY:
            _tighten(directory, DIRECTORY_MODE)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    for companion in (path, *(path.with_name(path.name + end) for end in SQLITE_COMPANIONS)):
        _tighten(companion, FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    # Only ever removes bits: a file the owner made stricter stays so.
    try:
        found = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if found & ~mode:
        path.chmod(found & mode)


def use_masker(engine: Engine, masker: Masker) -> None:
    """Make every free-text column this engine writes pass through `masker` (tables.MaskedText)."""
    setattr(engine.dialect, MASKER_ATTRIBUTE, masker)


def masker_of(dialect: object) -> Masker:
    """The masker `use_masker` gave this dialect's engine; NO_SECRETS when none was given."""
    found = getattr(dialect, MASKER_ATTRIBUTE, NO_SECRETS)
    return found if isinstance(found, Masker) else NO_SECRETS


def make_engine(url: str) -> Engine:
    """An engine for `url`, configured for the store; the caller disposes of it."""
    parsed = parse_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(parsed, pool_pre_ping=True)
    path = sqlite_path(url)
    if path is not None:
        prepare_sqlite_file(path)
    if path is None:
        # One shared connection, or every connection would see its own empty database.
        engine = create_engine(
            parsed, poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
    else:
        engine = create_engine(parsed)
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def read_only(engine: Engine) -> Engine:
    """The same engine and pool, for transactions that only read."""
    return engine.execution_options(**{READ_ONLY: True})


def _configure_sqlite(dbapi_connection: sqlite3.Connection, _record: object) -> None:
    # We emit BEGIN ourselves (see _begin_sqlite); sqlite3's own handling skips it for SELECTs.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        _use_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable enough in WAL mode, much faster
    finally:
        cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    # WAL lets readers and one writer work at once, and the file remembers it. Switching to it
    # needs an exclusive lock, and SQLite answers "busy" at once rather than calling the busy
    # handler when several processes open a new file together: so we retry for a while.
    if cursor.execute("PRAGMA journal_mode").fetchone() == ("wal",):
        return
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _begin_sqlite(connection: Connection) -> None:
    # A writer takes the write lock up front: a deferred transaction that reads and then writes
    # fails at once with SQLITE_BUSY when another writer got there first, busy_timeout or not.
    read = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN DEFERRED" if read else "BEGIN IMMEDIATE")
