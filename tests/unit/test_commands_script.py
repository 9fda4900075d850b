"""Scripts carry any value through sh exactly once-quoted, and refuse what no host could hold."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.commands.script import (
    MAX_ARGV_SCRIPT,
    Script,
    UnsafeValue,
    chain,
    check_env,
    check_name,
    check_path,
    command_script,
    join,
    script,
    write_file_script,
)

# Values that break naive quoting: spaces, both quotes, $, %, backslashes, globs, newlines, unicode.
NASTY = [
    "plain",
    "",
    "two words",
    "it's",
    'say "hi"',
    "$HOME and ${PATH} and $(id) and `id`",
    "100% %s %(here)s %%",
    "back\\slash\\",
    "*.conf ?x [ab]",
    "line one\nline two\n",
    "tab\tseparated",
    "; rm -rf / # not a comment",
    "-starts-with-dash",
    "naïve ünïcode ✓",
    "'\"'\"",
]
DUMP = "import json, os, sys; print(json.dumps([sys.argv[1:], os.getcwd(), dict(os.environ)]))"


def run(script_: Script, *, stdin: bool = False) -> subprocess.CompletedProcess[str]:
    """Run a script the way an executor would: as argv, or its text on stdin."""
    if stdin:
        return subprocess.run(
            script_.stdin_argv, input=script_.text, capture_output=True, text=True, check=False
        )
    return subprocess.run(script_.argv, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("value", NASTY)
def test_join_gives_back_each_word_to_a_posix_shell_parser(value: str) -> None:
    assert shlex.split(join(["prog", value, value])) == ["prog", value, value]


@pytest.mark.parametrize("via_stdin", [False, True], ids=["argv", "stdin"])
def test_a_command_script_passes_every_argument_and_variable_through_unchanged(
    tmp_path: Path, via_stdin: bool
) -> None:
    workdir = tmp_path / "dir with 'quotes' and $dollar"
    workdir.mkdir()
    env = {f"V{i}": value for i, value in enumerate(NASTY)}

    result = run(
        command_script([sys.executable, "-c", DUMP, *NASTY], cwd=str(workdir), env=env),
        stdin=via_stdin,
    )

    assert result.returncode == 0, result.stderr
    argv, cwd, environ = json.loads(result.stdout)
    assert argv == NASTY
    assert cwd == str(workdir)
    assert {name: environ[name] for name in env} == env


def test_a_command_script_keeps_the_exit_status_of_the_command() -> None:
    assert run(command_script(["sh", "-c", "exit 7"])).returncode == 7


@pytest.mark.parametrize("content", [*NASTY, "no trailing newline", "\n\n", "x" * 50_000])
def test_a_file_is_written_with_exactly_its_content(tmp_path: Path, content: str) -> None:
    target = tmp_path / "sub dir" / "file.txt"

    result = run(write_file_script(str(target), content, mode="0640"))

    assert result.returncode == 0, result.stderr
    assert target.read_text() == content
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_a_chain_runs_its_parts_in_order_and_stops_at_the_first_failure(tmp_path: Path) -> None:
    log = tmp_path / "log"

    def step(word: str) -> Script:
        return script([f"echo {word} >> {log}"])

    result = run(chain(step("one"), step("two"), script(["exit 4"]), step("three")))

    assert result.returncode == 4
    assert log.read_text().split() == ["one", "two"]


def test_a_script_too_long_for_one_argv_element_asks_to_go_on_stdin() -> None:
    huge = Script("#" * (MAX_ARGV_SCRIPT + 1))

    with pytest.raises(UnsafeValue, match="stdin"):
        _ = huge.argv
    assert huge.stdin_argv == ("/bin/sh", "-s")


@pytest.mark.parametrize("stdin", [False, True])
def test_a_scripts_args_reach_it_as_positional_parameters_unchanged(stdin: bool) -> None:
    values = tuple(NASTY)
    built = Script('for a in "$@"; do printf "%s\\0" "$a"; done', args=values)

    result = run(built, stdin=stdin)

    assert result.returncode == 0, result.stderr
    assert tuple(result.stdout.split("\0")[:-1]) == values


def test_a_script_is_shown_by_its_name_and_first_line_and_renamed_without_change() -> None:
    built = script(["echo hi"])
    step = built.named("check host")

    assert (step.text, step.args, step.name) == (built.text, (), "check host")
    assert str(step) == "sh -s <<check host: set -eu>>"
    assert str(Script("", args=("a b",), name="probe")) == "sh -s <<probe>> 'a b'"


def test_builders_and_executors_share_one_script_type() -> None:
    from shipyard.executors import Script as ExecutorScript
    from shipyard.executors.base import Script as BaseScript

    assert ExecutorScript is Script
    assert BaseScript is Script


@pytest.mark.parametrize(
    ("check", "value"),
    [
        pytest.param(lambda v: check_name(v, "name"), "../etc", id="name-with-slash"),
        pytest.param(lambda v: check_name(v, "name"), "..", id="name-dot-dot"),
        pytest.param(lambda v: check_name(v, "name"), "a b", id="name-with-space"),
        pytest.param(lambda v: check_path(v, "path"), "relative/path", id="relative-path"),
        pytest.param(lambda v: check_path(v, "path"), "/a\nb", id="path-with-newline"),
        pytest.param(lambda v: check_env({v: "x"}), "MY-VAR", id="env-name-with-dash"),
        pytest.param(lambda v: check_env({v: "x"}), "1ST", id="env-name-with-digit-first"),
        pytest.param(lambda v: check_env({"A": v}), "nul\0byte", id="env-value-with-nul"),
        pytest.param(lambda v: join([v]), "", id="empty-command"),
        pytest.param(lambda v: join([v]), "-x", id="command-starting-with-option"),
        pytest.param(lambda v: write_file_script("/f", "x", mode=v), "rwx", id="bad-mode"),
    ],
)
def test_values_no_host_could_take_are_refused(check: Callable[[str], object], value: str) -> None:
    with pytest.raises(UnsafeValue):
        check(value)
