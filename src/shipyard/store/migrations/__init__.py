"""Runs the store's Alembic migrations in-process, on a connection we own: no alembic.ini.

Alembic (with Mako and Pygments, about 150 ms of imports) is loaded only to migrate: a store
already at head is recognised by reading `alembic_version` and the migration files' own
`revision` lines, which is what every command but the first one after an upgrade does.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from shipyard.errors import StoreError
from shipyard.store.engine import read_only
from shipyard.store.quick import head_from_files

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).parent
VERSIONS = HERE / "versions"
VERSION_TABLE = "alembic_version"
# Any fixed number: it names the PostgreSQL advisory lock that serialises concurrent upgrades.
MIGRATION_LOCK = 0x5A1D_0001


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration pointing at these migrations, handing over `connection`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest migration this Shipyard knows: the one no other migration follows.

    Read from the files' `revision` and `down_revision` lines (store.quick); when those do not
    name exactly one head (a file written some other way, a branch), Alembic decides.
    """
    return head_from_files() or _alembic_head()


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError("the store has no migrations")
    return head


def current_revision(connection: Connection) -> str | None:
    """The migration the database is at; None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def stored_revision(engine: Engine) -> str | None:
    """The migration the database is at, read without a write transaction (and without
    Alembic); None for an empty database, or one at several revisions (Alembic sorts it out)."""
    with read_only(engine).begin() as connection:
        if not inspect(connection).has_table(VERSION_TABLE):
            return None
        found = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
        return str(found[0][0]) if len(found) == 1 else None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database to `revision`; safe when several processes start at once.

    A database already at head is only read: the check takes no write lock, so commands that
    only read never wait for (or block) a writer, and a role without DDL rights can open it.
    """
    try:
        if revision == "head" and stored_revision(engine) == head_revision():
            return
        _upgrade(engine, revision)
    except SQLAlchemyError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot open the state store at {where}: {exc}") from exc


def _upgrade(engine: Engine, revision: str) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # SQLite serialises writers on its own (BEGIN IMMEDIATE); PostgreSQL needs a lock.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        from alembic import command
        from alembic.util import CommandError

        try:
            command.upgrade(alembic_config(connection), revision)
        except CommandError as exc:
            found = current_revision(connection)
            raise StoreError(
                f"cannot migrate the state store (it is at migration {found!r}, this Shipyard"
                f" knows up to {head_revision()!r}): {exc}"
            ) from exc
