"""Releases are installed in place, marked complete last, and switched to atomically."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.commands.control import LAUNCHER_FILE, PROGRAM_FILE, UNIT_FILE
from shipyard.commands.release import (
    MARKER,
    MARKER_TMP,
    RESERVED_NAMES,
    ReleaseLayout,
    extract_argv,
    install_script,
    is_intact_argv,
    mark_complete_script,
    parse_prepare,
    parse_switch,
    prepare_script,
    read_current_argv,
    remove_service_script,
    restore_current_script,
    revision_of_link,
    switch_current_script,
    switch_slot_script,
)
from shipyard.commands.script import Argv, Script, UnsafeValue
from shipyard.config.artifact import is_reserved


def sh(command: Script | Argv, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run a builder's output locally, as an executor would."""
    argv = command.argv if isinstance(command, Script) else command
    result = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    return subprocess.CompletedProcess(
        argv, result.returncode, result.stdout.decode(), result.stderr.decode()
    )


def tarball(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def install(layout: ReleaseLayout, revision: str) -> None:
    """Prepare, upload, mark: what a deployment does before switching."""
    assert sh(prepare_script(layout, revision)).returncode == 0
    assert sh(extract_argv(layout, revision), tarball({"app.txt": revision})).returncode == 0
    assert sh(mark_complete_script(layout, revision)).returncode == 0


@pytest.fixture
def layout(tmp_path: Path) -> ReleaseLayout:
    return ReleaseLayout(str(tmp_path / "root dir"), "api")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (lambda x: x.service_dir, "/srv/shipyard/api"),
        (lambda x: x.releases, "/srv/shipyard/api/releases"),
        (lambda x: x.release("r1"), "/srv/shipyard/api/releases/r1"),
        (lambda x: x.marker("r1"), "/srv/shipyard/api/releases/r1/.shipyard-complete"),
        (lambda x: x.current, "/srv/shipyard/api/current"),
        (lambda x: x.previous, "/srv/shipyard/api/previous"),
        (lambda x: x.record, "/srv/shipyard/api/deployed.json"),
        (lambda x: x.logs, "/srv/shipyard/api/logs"),
        (lambda x: x.slot("blue"), "/srv/shipyard/api/slots/blue"),
        (lambda x: x.slot("green"), "/srv/shipyard/api/slots/green"),
    ],
)
def test_the_layout_puts_everything_under_the_service_directory(
    path: Callable[[ReleaseLayout], str], expected: str
) -> None:
    assert path(ReleaseLayout("/srv/shipyard/", "api")) == expected


@pytest.mark.parametrize(
    "name", [*RESERVED_NAMES, MARKER, MARKER_TMP, PROGRAM_FILE, LAUNCHER_FILE, UNIT_FILE]
)
def test_every_name_shipyard_writes_into_a_release_is_reserved_from_artifacts(name: str) -> None:
    assert is_reserved(name)


@pytest.mark.parametrize("name", ["app/.shipyard/x", "shipyard.txt", "static/.shipyard-complete"])
def test_names_below_the_top_of_a_release_are_the_artifacts_own(name: str) -> None:
    assert not is_reserved(name)


def test_marking_complete_writes_only_reserved_names(layout: ReleaseLayout) -> None:
    assert sh(prepare_script(layout, "r1")).returncode == 0

    assert sh(mark_complete_script(layout, "r1")).returncode == 0

    names = [p.name for p in Path(layout.release("r1")).iterdir()]
    assert names == [MARKER]
    assert MARKER_TMP in mark_complete_script(layout, "r1").text


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ReleaseLayout("srv/shipyard", "api"), "absolute"),
        (lambda: ReleaseLayout("/srv", "a/b"), "service name"),
        (lambda: ReleaseLayout("/srv", "api").release("../x"), "revision"),
        (lambda: ReleaseLayout("/srv", "api").release(".."), "revision"),
        (lambda: ReleaseLayout("/srv", "api").slot("red"), "blue or green"),  # type: ignore[arg-type]
    ],
)
def test_a_layout_refuses_paths_that_would_escape_it(
    make: Callable[[], object], message: str
) -> None:
    with pytest.raises(UnsafeValue, match=message):
        make()


def test_a_fresh_release_is_prepared_empty_then_found_intact_once_marked(
    layout: ReleaseLayout,
) -> None:
    first = sh(prepare_script(layout, "r1"))
    assert (first.returncode, parse_prepare(first.stdout)) == (0, False)
    assert Path(layout.logs).is_dir()
    assert Path(layout.slots).is_dir()
    assert sh(is_intact_argv(layout, "r1")).returncode != 0

    assert sh(extract_argv(layout, "r1"), tarball({"app.txt": "one"})).returncode == 0
    assert sh(mark_complete_script(layout, "r1")).returncode == 0

    assert sh(is_intact_argv(layout, "r1")).returncode == 0
    again = sh(prepare_script(layout, "r1"))
    assert parse_prepare(again.stdout) is True
    assert Path(layout.release("r1"), "app.txt").read_text() == "one"


def test_a_half_uploaded_release_is_cleared_before_the_next_upload(layout: ReleaseLayout) -> None:
    sh(prepare_script(layout, "r1"))
    Path(layout.release("r1"), "leftover").write_text("partial")

    result = sh(prepare_script(layout, "r1"))

    assert parse_prepare(result.stdout) is False
    assert list(Path(layout.release("r1")).iterdir()) == []


def test_a_marker_naming_another_revision_does_not_count_as_intact(layout: ReleaseLayout) -> None:
    install(layout, "r1")
    Path(layout.marker("r1")).write_text("r2\n")

    assert sh(is_intact_argv(layout, "r1")).returncode != 0


def test_the_install_command_runs_inside_the_release_with_its_environment(
    layout: ReleaseLayout,
) -> None:
    install(layout, "r1")

    result = sh(
        install_script(layout, "r1", ["sh", "-c", 'pwd; printf %s "$MODE"'], {"MODE": "a b"})
    )

    assert result.stdout.splitlines() == [layout.release("r1"), "a b"]


def test_current_is_never_pointed_at_an_incomplete_release(layout: ReleaseLayout) -> None:
    sh(prepare_script(layout, "r1"))

    result = sh(switch_current_script(layout, "r1"))

    assert result.returncode == 3
    assert "not complete" in result.stderr
    assert not os.path.lexists(layout.current)


def test_switching_points_current_at_the_release_and_remembers_the_one_before(
    layout: ReleaseLayout,
) -> None:
    install(layout, "r1")
    install(layout, "r2")

    first = sh(switch_current_script(layout, "r1"))
    second = sh(switch_current_script(layout, "r2"))
    same_again = sh(switch_current_script(layout, "r2"))

    assert parse_switch(first.stdout) is None
    assert parse_switch(second.stdout) == "r1"
    assert parse_switch(same_again.stdout) == "r2"
    assert os.readlink(layout.current) == "releases/r2"
    assert os.readlink(layout.previous) == "releases/r1"
    assert Path(layout.current, "app.txt").read_text() == "r2"
    assert revision_of_link(sh(read_current_argv(layout)).stdout) == "r2"


def test_rolling_back_is_switching_to_previous_which_swaps_the_two(layout: ReleaseLayout) -> None:
    install(layout, "r1")
    install(layout, "r2")
    sh(switch_current_script(layout, "r1"))
    sh(switch_current_script(layout, "r2"))

    sh(switch_current_script(layout, "r1"))

    assert os.readlink(layout.current) == "releases/r1"
    assert os.readlink(layout.previous) == "releases/r2"


def test_restoring_after_a_failed_switch_never_makes_the_failed_release_previous(
    layout: ReleaseLayout,
) -> None:
    for revision in ("r0", "r1", "bad"):
        install(layout, revision)
    sh(switch_current_script(layout, "r0"))
    sh(switch_current_script(layout, "r1"))
    sh(switch_current_script(layout, "bad"))  # the deployment of "bad" then fails

    sh(restore_current_script(layout, "r1"))

    assert os.readlink(layout.current) == "releases/r1"
    assert os.readlink(layout.previous) == "releases/r1"


def test_a_slot_points_at_its_release_relative_to_the_slots_directory(
    layout: ReleaseLayout,
) -> None:
    install(layout, "r1")

    result = sh(switch_slot_script(layout, "green", "r1"))

    assert result.returncode == 0, result.stderr
    assert os.readlink(layout.slot("green")) == "../releases/r1"
    assert Path(layout.slot("green"), "app.txt").read_text() == "r1"
    assert not os.path.lexists(layout.previous)


def test_the_live_release_is_never_cleared_even_if_its_marker_went_missing(
    layout: ReleaseLayout,
) -> None:
    install(layout, "r1")
    sh(switch_current_script(layout, "r1"))
    os.remove(layout.marker("r1"))

    result = sh(prepare_script(layout, "r1"))

    assert result.returncode == 3
    assert Path(layout.release("r1"), "app.txt").exists()


def test_current_exists_and_names_a_complete_release_at_every_instant_of_many_switches(
    layout: ReleaseLayout,
) -> None:
    install(layout, "r1")
    install(layout, "r2")
    sh(switch_current_script(layout, "r1"))
    seen: list[str] = []
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            try:
                seen.append(Path(layout.current, ".shipyard-complete").read_text())
            except OSError as error:
                seen.append(f"missing: {error}")

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for revision in ["r2", "r1"] * 15:
            assert sh(switch_current_script(layout, revision)).returncode == 0
    finally:
        done.set()
        watcher.join()

    assert seen
    assert set(seen) == {"r1\n", "r2\n"}


def test_removing_a_service_takes_its_releases_links_and_record_and_says_so(
    tmp_path: Path,
) -> None:
    layout = ReleaseLayout(str(tmp_path), "api")
    release = Path(layout.release("r1"))
    release.mkdir(parents=True)
    Path(layout.current).symlink_to(release)
    Path(layout.record).write_text("{}")
    (tmp_path / "web").mkdir()  # another service: left alone

    first = sh(remove_service_script(layout))
    again = sh(remove_service_script(layout))

    assert (first.returncode, first.stdout.strip()) == (0, "removed")
    assert (again.returncode, again.stdout.strip()) == (0, "absent")
    assert not Path(layout.service_dir).exists()
    assert (tmp_path / "web").is_dir()
