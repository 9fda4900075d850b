"""Only the store's owner can read it: its directory is 700, the database and its WAL 600."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.store import default_url, open_store

from .builders import begin


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def permissive_umask() -> Iterator[None]:
    """The usual umask, which on its own would leave files 644 and directories 755."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_store_is_created_700_and_600_with_its_wal(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    with open_store(default_url(project)) as store:
        begin(store, "d1")  # something written: the WAL and shared memory exist now
        folder = project / ".shipyard"
        files = [folder / "state.db", folder / "state.db-wal", folder / "state.db-shm"]
        assert all(f.exists() for f in files)
        assert mode(folder) == 0o700
        assert {f.name: mode(f) for f in files} == dict.fromkeys((f.name for f in files), 0o600)


def test_a_store_left_readable_by_others_is_tightened(tmp_path: Path) -> None:
    folder = tmp_path / ".shipyard"
    folder.mkdir(mode=0o755)
    url = f"sqlite:///{folder / 'state.db'}"
    with open_store(url) as store:
        begin(store, "d1")
    for name in ("state.db", "state.db-wal"):
        (folder / name).touch()
        (folder / name).chmod(0o644)
    folder.chmod(0o755)
    with open_store(url) as store:
        assert store.deployment("d1") is not None
        assert mode(folder) == 0o700
        assert mode(folder / "state.db") == 0o600
        assert mode(folder / "state.db-wal") == 0o600


def test_a_directory_shipyard_did_not_make_is_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    with open_store(f"sqlite:///{shared / 'state.db'}") as store:
        begin(store, "d1")
        assert mode(shared) == 0o755
        assert mode(shared / "state.db") == 0o600
        assert mode(shared / "state.db-wal") == 0o600
