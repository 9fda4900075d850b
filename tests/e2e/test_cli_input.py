"""Bad input on the command line: nonsensical numbers, errors under --json, bootstrap's hosts."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from cli_runner import cli_env, shipyard

from shipyard.cli.app import _register, app

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello"


def commands() -> Iterator[tuple[list[str], object]]:
    """Every command of the CLI as (words that call it, the command), subcommands included."""
    _register([])  # import every command's module
    root = typer.main.get_command(app)

    def walk(words: list[str], command: object) -> Iterator[tuple[list[str], object]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            if words and getattr(command, "params", []):  # a group that runs itself (audit)
                yield words, command
            for name, sub in sorted(subcommands.items()):
                yield from walk([*words, name], sub)
        else:
            yield words, command

    yield from walk([], root)


# What a command needs besides its arguments to get as far as reading the project.
NEEDS = {
    "delete": ["--yes"],
    "tokens create": ["--user", "x", "--name", "ci"],
    "users add": ["--role", "viewer"],
}


def call(words: list[str], command: object, *options: str) -> list[str]:
    """The command line for `words` with `options`, what it NEEDS, and a filler for each
    required argument."""
    required = [
        p for p in getattr(command, "params", []) if p.param_type_name == "argument" and p.required
    ]
    needs = NEEDS.get(" ".join(words), [])
    return [*words, *needs, *options, *(["--", *["x"] * len(required)] if required else [])]


def number_kind(param: object) -> str:
    """ "integer" or "float" for a number option, else ""; Typer's own view of the annotation."""
    descriptor = getattr(param, "type_descriptor", None)
    annotation = getattr(descriptor, "annotation", None)
    if annotation is None:  # a plain click parameter
        name = getattr(getattr(param, "type", None), "name", "")
        return name if name in ("integer", "float") else ""
    return {int: "integer", float: "float"}.get(annotation, "")


NUMBER_OPTIONS = [
    (words, command, param.opts[0], number_kind(param))
    for words, command in commands()
    for param in getattr(command, "params", [])
    if param.param_type_name == "option" and number_kind(param)
]
JSON_COMMANDS = [
    (words, command)
    for words, command in commands()
    if any("--json" in p.opts for p in getattr(command, "params", []))
]
# Commands that only ask a server and never read the project (they need --server).
SERVER_ONLY = {"versions", "versions diff"}


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".shipyard", "__pycache__"))
    return target


def test_the_cli_has_number_options_and_json_commands_to_check() -> None:
    assert {(" ".join(w), o) for w, _, o, _ in NUMBER_OPTIONS} >= {
        ("run", "--in-flight"),
        ("run", "--timeout"),
        ("audit", "--limit"),
    }
    assert {" ".join(w) for w, _ in JSON_COMMANDS} >= {"deploy", "bootstrap", "status", "audit"}


@pytest.mark.parametrize(
    ("words", "command", "option", "kind"),
    NUMBER_OPTIONS,
    ids=[f"{' '.join(w)} {o}" for w, _, o, _ in NUMBER_OPTIONS],
)
def test_every_number_option_refuses_nonsense_with_exit_2_naming_the_option(
    hello: Path, words: list[str], command: object, option: str, kind: str
) -> None:
    nonsense = ["-5", "0"] + (["-1.5", "nan", "inf"] if kind == "float" else ["2.5"])
    for value in nonsense:
        result = shipyard(*call(words, command, option, value), cwd=hello)
        assert result.returncode == 2, (value, result.stdout, result.stderr)
        assert f"Invalid value for '{option}'" in result.stderr, (value, result.stderr)
        assert "Traceback" not in result.stderr


def test_a_number_refused_under_json_is_a_json_error_on_stdout(hello: Path) -> None:
    result = shipyard("run", "--in-flight", "-5", "--json", "--", "true", cwd=hello)
    assert result.returncode == 2
    error = json.loads(result.stdout)
    assert error["ok"] is False
    assert error["exit_code"] == 2
    assert "'--in-flight'" in error["error"]
    assert "-5" in error["error"]


READING_JSON_COMMANDS = [(w, c) for w, c in JSON_COMMANDS if " ".join(w) not in SERVER_ONLY]


@pytest.mark.parametrize(
    ("words", "command"),
    READING_JSON_COMMANDS,
    ids=[" ".join(w) for w, _ in READING_JSON_COMMANDS],
)
def test_every_json_command_prints_an_invalid_config_as_json_with_exit_2(
    hello: Path, words: list[str], command: object
) -> None:
    file = hello / "shipyard.yaml"
    file.write_text(
        file.read_text().replace("template: hello\n    sites", "template: x\n    sites")
    )
    result = shipyard(*call(words, command, "--json"), cwd=hello)
    assert result.returncode == 2, result.stderr
    error = json.loads(result.stdout)
    assert error["ok"] is False
    assert error["exit_code"] == 2
    [problem] = error["problems"]
    assert problem["path"] == "services.greeter.template"
    assert problem["file"] == "shipyard.yaml"
    assert problem["line"] > 0
    assert 'unknown template "x"' in problem["text"]


def test_a_failure_under_json_is_json_on_stdout_with_exit_1(hello: Path) -> None:
    env = cli_env(SHIPYARD_DATABASE_URL="mysql://nowhere/state")
    result = shipyard("status", "--json", cwd=hello, env=env)
    assert result.returncode == 1, result.stderr
    error = json.loads(result.stdout)
    assert error == {"ok": False, "exit_code": 1, "error": error["error"]}
    assert "mysql" in error["error"]
    human = shipyard("status", cwd=hello, env=env)
    assert human.returncode == 1
    assert human.stdout == ""
    assert "failed:" in human.stderr


UNREACHABLE = """\
name: far
templates:
  web:
    commands:
      start: [python3, -m, http.server]
sites:
  away:
    hosts:
      near: {connection: local, root: ROOT}
      far-1: {address: 127.0.0.1, port: 1}
services:
  web:
    template: web
    sites: [away]
"""


def test_bootstrap_names_the_host_that_failed_and_refuses_an_unknown_site(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text(UNREACHABLE.replace("ROOT", "/proc/no-such-root"))
    human = shipyard("bootstrap", cwd=tmp_path)
    assert human.returncode == 1
    lines = [line.strip() for line in human.stdout.splitlines()]
    assert any(line.startswith("far-1: cannot connect to 127.0.0.1:1") for line in lines), lines
    assert any(line.startswith("near: ") for line in lines), lines
    assert "bootstrap failed on 2 of 2 host(s):" in lines

    as_json = shipyard("bootstrap", "--json", cwd=tmp_path)
    assert as_json.returncode == 1
    reports = {r["host"]: r for r in json.loads(as_json.stdout)}
    assert set(reports) == {"near", "far-1"}
    assert "cannot connect" in reports["far-1"]["error"]
    assert reports["near"]["error"]

    unknown = shipyard("bootstrap", "--site", "awya", "--json", cwd=tmp_path)
    assert unknown.returncode == 2
    assert 'unknown site "awya" (did you mean away?)' in json.loads(unknown.stdout)["error"]
