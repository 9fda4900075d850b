"""A store already at head is recognised without Alembic (about 150 ms of imports saved)."""

from __future__ import annotations

import subprocess
import sys

from shipyard.store import make_engine, open_store
from shipyard.store.migrations import _alembic_head, head_revision, stored_revision


def test_the_head_read_from_the_files_is_alembics() -> None:
    assert head_revision() == _alembic_head()


def test_an_empty_database_is_at_no_revision(store_url: str) -> None:
    made = make_engine(store_url)
    try:
        assert stored_revision(made) is None
    finally:
        made.dispose()


def test_opening_a_migrated_store_does_not_import_alembic(store_url: str) -> None:
    open_store(store_url).close()  # migrates, with Alembic
    check = (
        "import sys\n"
        "from shipyard.store import open_store\n"
        f"open_store({store_url!r}).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('alembic', 'mako')))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", check], check=True, capture_output=True, text=True
    ).stdout
    assert found.strip() == "[]"
