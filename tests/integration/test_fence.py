"""The host's fence (commands/fence.py), run by the real sh: a step carries its controller's
epoch; the host keeps the largest it has seen and refuses any smaller one, running nothing of
the step; and rival steps of one epoch all run."""

from __future__ import annotations

import subprocess
from pathlib import Path

from shipyard.commands.fence import EPOCH_FILE, FENCED, fenced
from shipyard.commands.script import Script

STORE = "0f3a9c2b7d4e4b1a9e8f6c5d4b3a2918"


def run(script: Script) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", script.text, "sh", *script.args],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip


def step(root: Path, epoch: int, marker: Path) -> subprocess.CompletedProcess[str]:
    """A step that appends its epoch to `marker` (its positional argument) once fenced."""
    body = Script('set -eu\nprintf "%s\\n" "$1" >> "$2"\n', args=(str(epoch), str(marker)))
    return run(fenced(body, [str(root)], epoch, STORE))


def test_a_newer_epoch_runs_and_an_older_one_is_refused_having_done_nothing(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "ran"
    assert step(tmp_path, 3, marker).returncode == 0
    assert (tmp_path / EPOCH_FILE).read_text() == f"{STORE} 3\n"
    assert step(tmp_path, 3, marker).returncode == 0  # the same controller again
    assert step(tmp_path, 7, marker).returncode == 0
    late = step(tmp_path, 5, marker)  # woke up after epoch 7 took over
    assert late.returncode == FENCED
    assert "fenced: controller epoch 5, but epoch 7 has touched this host" in late.stderr
    assert marker.read_text().split() == ["3", "3", "7"]  # nothing of the refused step ran
    assert (tmp_path / EPOCH_FILE).read_text() == f"{STORE} 7\n"


def test_a_missing_or_damaged_epoch_file_counts_as_none(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    (tmp_path / EPOCH_FILE).write_text("garbage\n")
    assert step(tmp_path, 2, marker).returncode == 0
    assert (tmp_path / EPOCH_FILE).read_text() == f"{STORE} 2\n"
    fresh = tmp_path / "new-root"
    assert step(fresh, 1, marker).returncode == 0  # the root is made if it is missing
    assert (fresh / EPOCH_FILE).read_text() == f"{STORE} 1\n"


def test_parallel_steps_of_two_epochs_leave_the_larger(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    texts = [
        fenced(Script(f"echo {n} >> {marker}\n"), [str(tmp_path)], 4 + n % 2, STORE)
        for n in range(20)
    ]
    running = [
        subprocess.Popen(["/bin/sh", "-c", s.text], stderr=subprocess.PIPE, text=True)
        for s in texts
    ]
    codes = [p.wait(timeout=30) for p in running]
    for p in running:
        assert p.stderr is not None
        p.stderr.close()
    assert (tmp_path / EPOCH_FILE).read_text() == f"{STORE} 5\n"
    assert set(codes) <= {0, FENCED}
    assert codes.count(0) >= 10  # every epoch-5 step ran


def test_an_epoch_of_another_store_counts_as_none(tmp_path: Path) -> None:
    """A new database for the same hosts starts at epoch 1: the hosts take it."""
    marker = tmp_path / "ran"
    (tmp_path / EPOCH_FILE).write_text("another-store 90\n")
    assert step(tmp_path, 1, marker).returncode == 0
    assert (tmp_path / EPOCH_FILE).read_text() == f"{STORE} 1\n"


def test_instances_on_one_host_keep_epochs_of_their_own(tmp_path: Path) -> None:
    """Two rollouts of different instances of one host (each its own controller) never fence
    each other; one script working for both passes both fences."""
    marker = tmp_path / "ran"
    api, web = tmp_path / "api", tmp_path / "web"
    assert step(api, 3, marker).returncode == 0
    assert step(web, 9, marker).returncode == 0
    assert step(api, 3, marker).returncode == 0  # web's larger epoch is not api's
    both = fenced(Script(f"echo both >> {marker}\n"), [str(api), str(web)], 9, STORE)
    assert run(both).returncode == 0
    assert step(api, 3, marker).returncode == FENCED  # api was touched by 9 since
    assert marker.read_text().split() == ["3", "9", "3", "both"]
