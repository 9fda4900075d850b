"""Where the store lives, how its engines are set up, and how its schema gets to head."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from shipyard.errors import StoreError
from shipyard.store import database_url, default_url, make_engine, open_store
from shipyard.store.migrations import current_revision, head_revision
from shipyard.store.tables import described_here, metadata


def test_the_default_store_is_a_sqlite_file_in_the_project(tmp_path: Path) -> None:
    assert default_url(tmp_path) == f"sqlite:///{tmp_path}/.shipyard/state.db"


def test_the_environment_names_another_database(tmp_path: Path) -> None:
    pg = "postgresql+psycopg://shipyard@db.internal/shipyard"
    assert database_url(tmp_path, {"SHIPYARD_DATABASE_URL": pg}) == pg
    assert database_url(tmp_path, {"SHIPYARD_DATABASE_URL": " "}) == default_url(tmp_path)
    assert database_url(tmp_path, {}) == default_url(tmp_path)


@pytest.mark.parametrize("url", ["mysql://db/shipyard", "not a url"])
def test_an_unsupported_database_is_refused(url: str) -> None:
    with pytest.raises(StoreError):
        make_engine(url)


def test_a_plain_postgresql_url_uses_psycopg_3() -> None:
    engine = make_engine("postgresql://shipyard:secret@127.0.0.1:1/shipyard")
    try:
        assert engine.dialect.driver == "psycopg"
    finally:
        engine.dispose()


def test_an_unreachable_database_is_a_store_error_naming_it_without_password() -> None:
    with pytest.raises(StoreError, match="cannot open the state store at") as failed:
        open_store("postgresql://shipyard:hunter2@127.0.0.1:1/shipyard")
    assert "127.0.0.1:1/shipyard" in str(failed.value)
    assert "hunter2" not in str(failed.value)


def test_sqlite_waits_for_other_writers_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
    finally:
        engine.dispose()


def test_opening_the_store_creates_its_directory(tmp_path: Path) -> None:
    url = default_url(tmp_path / "project")
    with open_store(url) as store:
        assert store.instance_states() == []
    assert (tmp_path / "project" / ".shipyard" / "state.db").is_file()


def test_an_empty_database_is_migrated_to_head(store_url: str) -> None:
    with open_store(store_url) as store, store.engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        tables = set(inspect(conn).get_table_names())
    assert {"instances", "deployments", "rollouts", "audit", "events"} <= tables


def test_the_migrations_build_exactly_the_tables_the_code_uses(store_url: str) -> None:
    with open_store(store_url) as store, store.engine.connect() as conn:
        opts = {"compare_type": True, "include_name": lambda name, *_: described_here(name)}
        context = MigrationContext.configure(conn, opts=opts)
        assert compare_metadata(context, metadata) == []


def test_opening_again_leaves_a_migrated_store_as_it_is(store_url: str) -> None:
    with open_store(store_url) as store:
        store.append_audit(actor="alice", action="test", target="x", result="ok")
    with open_store(store_url) as store:
        assert len(store.audit()) == 1


def test_processes_opening_a_new_store_at_once_migrate_it_once(store_url: str) -> None:
    start = threading.Barrier(6)
    failures: list[BaseException] = []

    def open_and_close() -> None:
        start.wait()
        try:
            open_store(store_url).close()
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_and_close) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_store_from_a_newer_shipyard_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    engine = make_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
        with pytest.raises(StoreError, match="9999"):
            open_store(store_url)
    finally:
        engine.dispose()
