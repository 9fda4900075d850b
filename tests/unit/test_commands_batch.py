"""Several scripts as one: each part keeps its own output, status and `set -e`, run by real sh."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from shipyard.commands.batch import (
    OUTPUT_BUDGET,
    Batch,
    PartResult,
    batch,
    end_leftovers_script,
)
from shipyard.commands.script import MINIMUM_ENV, Script, UnsafeValue, script

BOUNDARY = "f00dfeed0123456789abcdef"


def run(combined: Batch) -> list[PartResult]:
    done = subprocess.run(
        ["sh", "-s"],
        input=combined.script.text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0
    assert done.stderr == ""
    return combined.parse(done.stdout)


PARTS = [
    (script(["echo out", "echo err >&2"]), PartResult(0, "out\n", "err\n")),
    (script(["false", "echo never"]), PartResult(1, "", "")),
    (script(["printf 'no newline'"]), PartResult(0, "no newline", "")),
    (script(["printf '\\n\\n'", "printf e >&2", "exit 4"]), PartResult(4, "\n\n", "e")),
    (script(["cat", "echo after"]), PartResult(0, "after\n", "")),  # stdin is /dev/null
    (Script("echo unset: $undefined_variable\n"), PartResult(0, "unset:\n", "")),
]


@pytest.mark.parametrize("parallel", [False, True], ids=["in turn", "at once"])
def test_each_part_keeps_its_own_output_and_exit_status(parallel: bool) -> None:
    combined = batch([part for part, _ in PARTS], BOUNDARY, parallel=parallel)

    assert run(combined) == [expected for _, expected in PARTS]


def test_a_failing_part_does_not_stop_the_parts_after_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    combined = batch([script(["exit 3"]), script([f"touch {marker}"])], BOUNDARY)

    first, second = run(combined)

    assert (first.exit_status, second.exit_status) == (3, 0)
    assert marker.exists()


def test_parts_at_once_run_together(tmp_path: Path) -> None:
    # The first part waits for a file only the second one makes: in turn, it would never come.
    flag = tmp_path / "flag"
    waiter = script([f"for i in $(seq 100); do [ -e {flag} ] && exit 0; sleep 0.1; done", "exit 9"])
    maker = script([f"touch {flag}"])

    results = run(batch([waiter, maker], BOUNDARY, parallel=True))

    assert [r.exit_status for r in results] == [0, 0]


def test_a_part_cannot_forge_a_frame_without_the_boundary() -> None:
    forged = script(["echo 'other 1'", "echo 'other 0'"])

    (result,) = run(batch([forged], BOUNDARY))

    assert result == PartResult(0, "other 1\nother 0\n", "")


@pytest.mark.parametrize(
    "cut", [0, 10, -1, -30], ids=["nothing", "header only", "last newline", "mid-frame"]
)
def test_output_cut_short_is_refused(cut: int) -> None:
    combined = batch([script(["echo a"]), script(["echo b"])], BOUNDARY)
    done = subprocess.run(
        ["sh", "-s"], input=combined.script.text, capture_output=True, text=True, check=True
    )
    text = done.stdout[:cut]

    with pytest.raises(UnsafeValue, match="batch output"):
        combined.parse(text)


@pytest.mark.parametrize(
    "boundary", ["short", "has space in it here", "x" * 65, "semi;colon-abcdefghij"]
)
def test_a_boundary_must_be_letters_and_digits(boundary: str) -> None:
    with pytest.raises(UnsafeValue, match="boundary"):
        batch([script(["true"])], boundary)


# Output of any size: capped per stream, the status and the last lines always come back.

CHATTY = script(
    [
        "i=0",
        # About 2 MB on each stream, then a last line that must come back.
        'line=$(printf "%0100d" 0)',
        'while [ $i -lt 20000 ]; do echo "$line"; echo "$line" >&2; i=$((i + 1)); done',
        "echo 'last out'",
        "echo 'last err' >&2",
        "exit 3",
    ]
)


@pytest.mark.parametrize("parallel", [False, True], ids=["in turn", "at once"])
def test_megabytes_of_output_come_back_capped_with_the_status_and_last_lines(
    parallel: bool,
) -> None:
    combined = batch([CHATTY, script(["echo quiet"])], BOUNDARY, parallel=parallel)
    done = subprocess.run(
        ["sh", "-s"], input=combined.script.text, capture_output=True, text=True, check=True
    )

    chatty, quiet = combined.parse(done.stdout)

    assert len(done.stdout) < OUTPUT_BUDGET
    assert (chatty.exit_status, chatty.stdout_truncated, chatty.stderr_truncated) == (3, True, True)
    for text, last in ((chatty.stdout, "last out"), (chatty.stderr, "last err")):
        assert text.startswith("[shipyard: ")
        assert "bytes of output cut" in text.splitlines()[0]
        assert text.endswith(f"{last}\n")
    assert quiet == PartResult(0, "quiet\n", "")


def test_the_output_of_many_parts_stays_within_the_budget() -> None:
    combined = batch([CHATTY] * 40, BOUNDARY, parallel=True)
    done = subprocess.run(
        ["sh", "-s"], input=combined.script.text, capture_output=True, text=True, check=True
    )

    results = combined.parse(done.stdout)

    assert len(done.stdout) < OUTPUT_BUDGET
    assert {(r.exit_status, r.stdout.splitlines()[-1]) for r in results} == {(3, "last out")}


# Time limits and process groups on the host; leftovers of an interrupted step.


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def test_a_batch_over_its_time_limit_is_stopped_on_the_host_with_every_child(
    tmp_path: Path,
) -> None:
    child = tmp_path / "child.pid"
    slow = script([f"sleep 300 & echo $! > {child}", "wait"])
    combined = batch([script(["echo first"]), slow], BOUNDARY, limit=0.5)

    done = subprocess.run(
        ["sh", "-s"],
        input=combined.script.text,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 124  # coreutils timeout: it had to stop the step
    pid = int(child.read_text())
    for _ in range(100):  # KILL follows TERM after a grace period at most
        if not _alive(pid):
            break
        time.sleep(0.1)
    assert not _alive(pid)
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"shipyard-batch.*/{child.name}"))


def test_a_batch_leads_its_own_process_group_registered_while_it_runs(
    tmp_path: Path,
) -> None:
    guard = tmp_path / "steps"
    guard.mkdir()
    look = script(["ps -o pgid= -p $$", f"ls {guard}"])

    (result,) = run(batch([look], BOUNDARY, guards=[str(guard)]))

    group, listed = result.stdout.split()
    assert group != str(os.getpgid(0))
    assert listed == group  # its own group, registered under its number
    assert list(guard.iterdir()) == []  # and no longer once it ended


def _start_time(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[19]


def test_ending_leftovers_stops_each_registered_group_and_spares_a_reused_number(
    tmp_path: Path,
) -> None:
    guard = tmp_path / "steps"
    guard.mkdir()
    # TERM is ignored: only the KILL after the grace period ends it.
    leftover = subprocess.Popen(
        ["sh", "-c", "trap '' TERM; sleep 300 & wait; sleep 300"], start_new_session=True
    )
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        (guard / str(leftover.pid)).write_text(_start_time(leftover.pid) + "\n")
        (guard / str(bystander.pid)).write_text("12345\n")  # someone else once had its number
        done = subprocess.run(
            ["sh", "-s"],
            input=end_leftovers_script(str(guard)).text,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

        assert done.returncode == 0, done.stderr
        assert leftover.wait(timeout=10) == -9
        assert f"ending process group {leftover.pid}" in done.stderr
        assert bystander.poll() is None
        assert list(guard.iterdir()) == []
    finally:
        for process in (leftover, bystander):
            if process.poll() is None:
                os.killpg(process.pid, 9)
            process.wait()


def test_ending_leftovers_creates_a_private_guard_directory(tmp_path: Path) -> None:
    guard = tmp_path / "service" / ".steps"

    subprocess.run(["sh", "-s"], input=end_leftovers_script(str(guard)).text, text=True, check=True)

    assert guard.is_dir()
    assert (guard.stat().st_mode & 0o777) == 0o700


def test_a_part_starts_with_the_minimum_environment_and_nothing_of_its_callers() -> None:
    combined = batch([script(["export OWN=mine", "env"])], BOUNDARY)
    caller = {"PATH": os.environ["PATH"], "HOME": "/home/x", "SENTINEL": "s3cr3t-value"}
    done = subprocess.run(
        ["sh", "-s"],
        input=combined.script.text,
        capture_output=True,
        text=True,
        env=caller,
        check=True,
    )

    (result,) = combined.parse(done.stdout)

    names = {line.split("=", 1)[0] for line in result.stdout.splitlines()}
    assert "s3cr3t-value" not in result.stdout
    assert {"PATH", "HOME", "LANG", "OWN"} <= names <= {*MINIMUM_ENV, "OWN", "PWD", "SHLVL", "_"}
    assert "HOME=/home/x" in result.stdout.splitlines()
