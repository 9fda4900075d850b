"""Several scripts as one: each part keeps its own output, status and `set -e`, run by real sh."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from shipyard.commands.batch import Batch, PartResult, batch
from shipyard.commands.script import Script, UnsafeValue, script

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
