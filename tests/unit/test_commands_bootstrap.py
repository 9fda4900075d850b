"""Bootstrap's scripts say what they found and made, refuse what only the host's owner can mend,
and start supervisord and nginx only when they are not running (run here by a real /bin/sh,
with stand-in programs on PATH)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipyard.commands import nginx, supervisor
from shipyard.commands.bootstrap import (
    USER_ARGV,
    CheckResult,
    managed_nginx_paths,
    nginx_dirs_argv,
    parse_check,
    start_nginx_script,
    start_supervisord_script,
    supervisord_check_script,
    systemd_check_script,
)
from shipyard.commands.control import Systemd
from shipyard.commands.script import Script

# What the scripts use of a host besides the programs they check for.
BASIC_TOOLS = ("mkdir", "rm", "id", "cat", "head", "sed", "sleep", "kill")


def stand_ins(tmp_path: Path, *, only: bool = False, **programs: str) -> dict[str, str]:
    """An environment whose PATH finds stand-in programs (name -> sh body) first; with `only`,
    nothing else but the basic tools, so a program not given is not installed."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name, body in programs.items():
        path = bin_dir / name
        path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
        path.chmod(0o755)
    if only:
        for tool in BASIC_TOOLS:
            found = shutil.which(tool)
            assert found is not None, tool
            (bin_dir / tool).symlink_to(found)
        return {"PATH": str(bin_dir), "HOME": str(tmp_path)}
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}


def run(built: Script, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run a script the way the executors do: its text on the stdin of `sh -s`."""
    return subprocess.run(
        built.stdin_argv,
        input=built.text,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("stdout", "found", "made", "down"),
    [
        ("", (), (), False),
        ("found root\nfound writable root\n", ("found root", "found writable root"), (), False),
        ("made root\nfound writable root\nsupervisord down\n", ("found writable root",), ("made root",), True),
        ("  found systemd 252 (252.22)\nnoise\n", ("found systemd 252 (252.22)",), (), False),
        ("supervisord down and out\n", (), (), False),
    ],
)  # fmt: skip
def test_a_check_is_read_back_line_by_line(
    stdout: str, found: tuple[str, ...], made: tuple[str, ...], down: bool
) -> None:
    assert parse_check(stdout) == CheckResult(found, made, down)


SUPERVISORD_UP = {"supervisord": "exit 0", "supervisorctl": "exit 0", "timeout": "exit 0"}
SUPERVISORD_DOWN = {**SUPERVISORD_UP, "supervisorctl": "exit 1"}


def test_a_fresh_supervisord_host_gets_its_root_and_says_supervisord_is_down(
    tmp_path: Path,
) -> None:
    root = tmp_path / "it's a $root"
    paths = supervisor.SupervisorPaths(str(tmp_path / "supervisor"))
    done = run(supervisord_check_script(str(root), paths), stand_ins(tmp_path, **SUPERVISORD_DOWN))
    assert done.returncode == 0, done.stderr
    assert parse_check(done.stdout) == CheckResult(("found writable root",), ("made root",), True)
    assert root.is_dir()
    assert Path(paths.programs).is_dir()
    assert list(root.iterdir()) == []  # the write probe is gone


def test_a_prepared_supervisord_host_is_found_as_it_is(tmp_path: Path) -> None:
    paths = supervisor.SupervisorPaths(str(tmp_path / "supervisor"))
    built = supervisord_check_script(str(tmp_path), paths)
    done = run(built, stand_ins(tmp_path, **SUPERVISORD_UP))
    found = ("found root", "found writable root", "found supervisord running")
    assert parse_check(done.stdout) == CheckResult(found, (), False)


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("supervisord", "supervisord not installed"),
        ("timeout", "timeout (coreutils) not installed"),
    ],
)
def test_a_host_without_a_needed_program_fails_the_check_saying_which(
    tmp_path: Path, missing: str, reason: str
) -> None:
    programs = {name: body for name, body in SUPERVISORD_UP.items() if name != missing}
    paths = supervisor.SupervisorPaths(str(tmp_path / "supervisor"))
    built = supervisord_check_script(str(tmp_path), paths)
    done = run(built, stand_ins(tmp_path, only=True, **programs))
    assert (done.returncode, done.stderr.strip()) == (1, reason)


def test_a_root_that_cannot_be_made_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    paths = supervisor.SupervisorPaths(str(tmp_path / "supervisor"))
    built = supervisord_check_script(str(tmp_path / "file" / "root"), paths)
    done = run(built, stand_ins(tmp_path, **SUPERVISORD_UP))
    assert done.returncode != 0
    assert "found writable root" not in done.stdout


def test_a_systemd_host_is_checked_for_systemctl_and_a_writable_unit_directory(
    tmp_path: Path,
) -> None:
    units = tmp_path / "units dir"
    env = stand_ins(tmp_path, systemctl="echo 'systemd 252 (252.22-1)'", timeout="exit 0")
    done = run(systemd_check_script(str(tmp_path / "root"), Systemd(str(units))), env)
    assert done.returncode == 0, done.stderr
    found = ("found writable root", f"found writable {units}", "found systemd 252 (252.22-1)")
    assert parse_check(done.stdout) == CheckResult(found, ("made root",), False)
    assert units.is_dir()


DUMP_ARGS_AND_ENV = f"""
{sys.executable} -c 'import json, os, sys; print(json.dumps([sys.argv[1:], dict(os.environ)]))' \
  "$@" > "$HOME/supervisord.json"
: > "$HOME/up"
"""


def test_supervisord_starts_with_only_the_minimum_environment_and_is_waited_for(
    tmp_path: Path,
) -> None:
    paths = supervisor.SupervisorPaths(str(tmp_path / "supervisor"))
    env = stand_ins(tmp_path, supervisord=DUMP_ARGS_AND_ENV, supervisorctl='[ -e "$HOME/up" ]')
    done = run(start_supervisord_script(paths), {**env, "DEPLOY_TOKEN": "s3cr3t-value"})
    assert (done.returncode, done.stdout) == (0, "started supervisord\n"), done.stderr
    argv, seen = json.loads((tmp_path / "supervisord.json").read_text())
    assert argv == ["-c", paths.conf]
    assert "DEPLOY_TOKEN" not in seen
    assert set(seen) - {"PWD", "SHLVL", "_"} == {"PATH", "HOME", "LANG"}


def test_nginx_that_runs_is_found_and_left_alone(tmp_path: Path) -> None:
    paths = managed_nginx_paths(str(tmp_path) + "/")
    Path(paths.pidfile).parent.mkdir(parents=True)
    Path(paths.pidfile).write_text(f"{os.getpid()}\n")  # a live process
    env = stand_ins(tmp_path, nginx='echo started >> "$HOME/nginx.log"')
    done = run(start_nginx_script(paths), env)
    assert (done.returncode, done.stdout) == (0, "found nginx running\n")
    assert not (tmp_path / "nginx.log").exists()


def test_nginx_with_a_stale_pid_file_is_started_and_waited_for(tmp_path: Path) -> None:
    paths = managed_nginx_paths(str(tmp_path))
    Path(paths.pidfile).parent.mkdir(parents=True)
    Path(paths.pidfile).write_text("999999999\n")  # no such process
    start = f'echo "$@" > "$HOME/nginx.args"; echo {os.getpid()} > {paths.pidfile}'
    done = run(start_nginx_script(paths), stand_ins(tmp_path, nginx=start))
    assert (done.returncode, done.stdout) == (0, "started nginx\n"), done.stderr
    args = (tmp_path / "nginx.args").read_text().split()
    assert args == list(nginx.start_argv(paths.conf, error_log=paths.error_log)[1:])


def test_a_managed_nginx_lives_under_the_root_with_its_directories_made() -> None:
    paths = managed_nginx_paths("/srv/shipyard/")
    assert paths.conf == "/srv/shipyard/nginx/nginx.conf"
    assert nginx_dirs_argv(paths) == (
        "mkdir",
        "-p",
        "--",
        "/srv/shipyard/nginx/conf.d",
        *(f"/srv/shipyard/nginx/{kind}_temp" for kind in nginx.TEMP_KINDS),
    )
    assert USER_ARGV == ("id", "-un")


def test_each_script_is_named_by_the_host_step_it_is(tmp_path: Path) -> None:
    paths = supervisor.SupervisorPaths("/srv/shipyard/supervisor")
    names = [
        systemd_check_script("/srv/shipyard", Systemd("/etc/systemd/system")).name,
        supervisord_check_script("/srv/shipyard", paths).name,
        start_supervisord_script(paths).name,
        start_nginx_script(managed_nginx_paths("/srv/shipyard")).name,
    ]
    assert names == ["check", "check host", "start supervisord", "start nginx"]
