"""Opening a store that is already migrated only reads: it never waits for the write lock.

Another process holding SQLite's write lock (a long deployment step being recorded, a migration)
must not make `status`, `audit` or `diff` fail with "database is locked".
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from shipyard.store import engine, open_store
from shipyard.store.migrations import head_revision, stored_revision

from .builders import begin


def test_opening_a_migrated_store_while_another_writer_holds_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    with open_store(url) as store:
        begin(store, "d1")
    # Short, so that a wait for the lock shows as an error here rather than as a slow test.
    monkeypatch.setattr(engine, "BUSY_TIMEOUT_MS", 200)
    writer = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        with open_store(url) as reader:
            assert [s.name for s in reader.instance_states()] == ["api@web-1"]
            assert [e.action for e in reader.audit()] == ["deploy.begin"]
            assert reader.verify_audit().whole
    finally:
        writer.rollback()
        writer.close()


def test_a_store_behind_head_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    from shipyard.store.migrations import upgrade

    made = engine.make_engine(url)
    try:
        upgrade(made, "0001")
        assert stored_revision(made) == "0001"
    finally:
        made.dispose()
    with open_store(url) as store:
        assert stored_revision(store.engine) == head_revision()
