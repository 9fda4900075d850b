"""A project directory as a config version's files: what counts, what is refused, the hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.app.projectfiles import (
    MAX_FILE_BYTES,
    check_upload,
    read_project,
    replace_project,
    version_hash,
)
from shipyard.errors import UsageError


def test_every_file_counts_but_the_state_directory_and_git(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "index.html").write_text("hi")
    (tmp_path / "shipyard.yaml").write_text("name: x\n")
    for skipped in (".shipyard", ".git", "app/.git"):
        (tmp_path / skipped).mkdir()
        (tmp_path / skipped / "f").write_text("no")
    assert read_project(tmp_path) == {"app/index.html": b"hi", "shipyard.yaml": b"name: x\n"}


def test_a_symlink_leaving_the_project_is_refused_naming_it(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (tmp_path / "secret").write_text("outside")
    (root / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(UsageError, match="link: a symlink that leaves the project"):
        read_project(root)


def test_a_symlink_inside_the_project_is_read_through(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert read_project(tmp_path) == {"alias": b"x", "real": b"x"}


def test_a_file_over_the_limit_is_refused_naming_it(tmp_path: Path) -> None:
    (tmp_path / "huge").write_bytes(b"x" * (MAX_FILE_BYTES + 1))
    with pytest.raises(UsageError, match="huge: "):
        read_project(tmp_path)


def test_the_hash_depends_on_paths_and_contents_only() -> None:
    one = version_hash({"a": b"1", "b": b"2"})
    assert one == version_hash({"b": b"2", "a": b"1"})
    assert one != version_hash({"a": b"2", "b": b"1"})
    assert one != version_hash({"a": b"1", "c": b"2"})


@pytest.mark.parametrize(
    "path", ["../up", "/etc/passwd", "a/../../b", "a\\b", ".shipyard/state.db", "x/.git/config", ""]
)
def test_an_upload_path_outside_the_project_or_in_its_state_is_refused(path: str) -> None:
    with pytest.raises(UsageError, match="the upload is refused"):
        check_upload({path: b"x", "shipyard.yaml": b""})


def test_replacing_a_project_leaves_exactly_the_new_files(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("gone")
    (tmp_path / "same").write_text("kept")
    (tmp_path / ".shipyard").mkdir()
    (tmp_path / ".shipyard" / "state.db").write_text("state")
    replace_project(tmp_path, {"same": b"kept", "sub/new": b"made"})
    assert read_project(tmp_path) == {"same": b"kept", "sub/new": b"made"}
    assert (tmp_path / ".shipyard" / "state.db").read_text() == "state"


def test_a_store_kept_in_the_project_is_no_part_of_it_and_is_never_written_or_removed(
    tmp_path: Path,
) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "shipyard.yaml").write_text("name: p\n")
    store = root / "state.db"
    store.write_bytes(b"\0" * (MAX_FILE_BYTES + 1))  # over the limit for a file
    assert read_project(root, [store]) == {"shipyard.yaml": b"name: p\n"}
    replace_project(root, {"shipyard.yaml": b"name: q\n"}, [store])
    assert store.stat().st_size == MAX_FILE_BYTES + 1
    with pytest.raises(UsageError, match=r"state\.db: the state store's own file"):
        replace_project(root, {"state.db": b"overwritten"}, [store])
    assert store.stat().st_size == MAX_FILE_BYTES + 1
