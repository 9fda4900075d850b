"""The local executor: the same interface as SSH, on this machine, with real processes."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest

from shipyard.config.models import Host, SshSettings
from shipyard.config.topology import resolve_host
from shipyard.executors import (
    CommandFailed,
    CommandTimeout,
    Executor,
    Script,
    executor_for,
)
from shipyard.executors.local import LocalExecutor

pytestmark = pytest.mark.integration

T = TypeVar("T")


def locally(project: Path, scenario: Callable[[Executor], Awaitable[T]]) -> T:
    async def main() -> T:
        executor = executor_for("local", Host(), SshSettings(), project)
        try:
            return await scenario(executor)
        finally:
            await executor.close()

    return asyncio.run(main())


def test_a_host_named_local_runs_here_with_its_root_in_the_project(tmp_path: Path):
    executor = executor_for("local", Host(), SshSettings(), tmp_path)
    assert isinstance(executor, LocalExecutor)
    assert executor.root == str(tmp_path / ".shipyard" / "hosts" / "local")
    other = executor_for("box", Host(connection="local", root="/srv/x"), SshSettings(), tmp_path)
    assert (type(other), other.root) == (LocalExecutor, "/srv/x")


def test_a_local_hosts_relative_root_is_in_the_project_as_flattening_says(tmp_path: Path):
    host = Host(connection="local", root="hosts/box")
    executor = executor_for("box", host, SshSettings(), tmp_path)
    assert executor.root == resolve_host("box", host, SshSettings(), tmp_path).root
    assert executor.root == str(tmp_path / "hosts" / "box")


def test_argv_runs_without_a_shell(tmp_path: Path):
    result = locally(tmp_path, lambda ex: ex.run(["echo", "$HOME", "*", ";", "ls"]))
    assert result.stdout == "$HOME * ; ls\n"


def test_environment_stdin_and_directory_reach_the_process(tmp_path: Path):
    probe = 'echo "$GREETING"; pwd; cat'
    result = locally(
        tmp_path,
        lambda ex: ex.run(
            ["sh", "-c", probe], env={"GREETING": "hello"}, stdin=b"data\n", cwd=str(tmp_path)
        ),
    )
    assert result.stdout == f"hello\n{tmp_path}\ndata\n"


def test_a_script_runs_under_sh_with_its_arguments(tmp_path: Path):
    script = Script('echo "$#:$1"\nexit 4\n', args=("a b",))
    result = locally(tmp_path, lambda ex: ex.run(script, check=False))
    assert (result.exit_status, result.stdout) == (4, "1:a b\n")


def test_a_missing_program_fails_like_in_a_shell(tmp_path: Path):
    with pytest.raises(CommandFailed, match="exited with status 127") as failed:
        locally(tmp_path, lambda ex: ex.run(["no-such-program-anywhere"]))
    assert "no-such-program-anywhere" in failed.value.result.stderr


def test_a_timeout_stops_the_command_and_its_children(tmp_path: Path):
    pid_file = tmp_path / "child.pid"
    start = time.monotonic()
    with pytest.raises(CommandTimeout):
        locally(
            tmp_path,
            lambda ex: ex.run(["sh", "-c", f"sleep 30 & echo $! > {pid_file}; wait"], timeout=0.3),
        )
    assert time.monotonic() - start < 4  # generous: CI machines can be busy
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 2
    while Path(f"/proc/{child}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)  # the killed child may take a moment to be reaped by init
    status = Path(f"/proc/{child}/stat")
    assert not status.exists() or status.read_text().split()[2] == "Z"


def test_files_and_directories_go_through_the_same_paths_as_over_ssh(tmp_path: Path):
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "file").write_text("content\n")
    target = tmp_path / "host"
    target.mkdir()

    async def scenario(ex: Executor) -> tuple[bool, bool]:
        await ex.put(b"exec\n", f"{target}/tool", mode=0o755)
        await ex.get(f"{target}/tool", tmp_path / "tool.copy")
        return await ex.put_dir(tree, f"{target}/tree"), await ex.put_dir(tree, f"{target}/tree")

    assert locally(tmp_path, scenario) == (True, False)
    assert os.stat(target / "tool").st_mode & 0o777 == 0o755
    assert (tmp_path / "tool.copy").read_text() == "exec\n"
    assert (target / "tree" / "sub" / "file").read_text() == "content\n"
