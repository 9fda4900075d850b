"""store.quick: status and plan read a SQLite store without SQLAlchemy, and say exactly what
the store says, or step aside (None) whenever the store itself must be opened."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest

from shipyard.store import DeploymentStatus, default_url, open_store
from shipyard.store.migrations import head_revision
from shipyard.store.quick import head_from_files, open_quick

from .builders import begin, config
from .test_status_rows import fleet


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


def settled_fleet(url: str) -> None:
    """fleet() with its two deployments in flight finished, so nothing waits for recovery."""
    with open_store(url) as store:
        fleet(store)
        store.finish_deployment("d-run", status=DeploymentStatus.FAILED, error="stopped")
        store.finish_deployment("d-new", status=DeploymentStatus.SKIPPED, error="cancelled")


def test_quick_reads_say_what_the_store_says(store_url: str) -> None:
    url = store_url
    settled_fleet(url)
    with open_store(url) as store:
        rows, revisions = store.status_rows(), store.deployed_revisions()
        eu_rows = store.status_rows(site="eu")
    quick = open_quick(url)
    assert quick is not None
    with quick:
        assert quick.status_rows() == rows
        assert quick.status_rows(site="eu") == eu_rows
        assert quick.deployed_revisions() == revisions
    assert len(rows) == 5
    assert 0 < len(eu_rows) < len(rows)
    stamps = [t for r in rows for t in (r.deployed_at, r.last_started_at, r.last_finished_at)]
    assert {t.tzinfo for t in stamps if t is not None} == {UTC}


def test_a_deployment_in_flight_leaves_it_to_the_store_and_its_recovery(store_url: str) -> None:
    url = store_url
    with open_store(url) as store:
        begin(store, "d-1", "api@web-1", revision="r1")
    assert open_quick(url) is None
    with open_store(url) as store:
        store.finish_deployment("d-1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
    quick = open_quick(url)
    assert quick is not None
    quick.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://shipyard@127.0.0.1:1/none",  # no server answers
        "sqlite://",  # in memory
        "sqlite:///{dir}/state.db?mode=ro",  # options: the store decides
        "sqlite:///{dir}/missing.db",  # no store yet: open_store creates it
    ],
)
def test_anything_but_a_plain_sqlite_store_is_left_to_the_store(url: str, tmp_path: Path) -> None:
    assert open_quick(url.format(dir=tmp_path)) is None


def test_a_store_behind_the_newest_migration_is_left_to_the_store(store_url: str) -> None:
    url = store_url
    settled_fleet(url)
    with open_store(url) as store, store.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '0001'")
    assert open_quick(url) is None


def test_the_head_read_from_the_files_is_alembics() -> None:
    from alembic.config import Config  # noqa: F401 (Alembic is what decides otherwise)
    from alembic.script import ScriptDirectory

    from shipyard.store.migrations import alembic_config

    assert head_from_files() == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head_revision() == head_from_files()


def test_the_default_url_names_the_file_sqlalchemy_reads(tmp_path: Path) -> None:
    from sqlalchemy import make_url

    odd = tmp_path / "a b?c%20#é"
    assert make_url(default_url(odd)).database == str(odd / ".shipyard" / "state.db")


def test_quick_reads_load_no_sqlalchemy(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path)
    settled_fleet(url)
    probe = (
        "import sys\nfrom shipyard.store.quick import open_quick\n"
        f"quick = open_quick({url!r})\nassert quick is not None\n"
        "print(len(quick.status_rows()), 'sqlalchemy' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["5", "False"]
