"""Hostile config files are reported, never read without end: aliases, nesting, size, encoding.

And a project with nothing in it is an error, not a successful (empty) plan or deploy.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.config.textfile import MAX_FILE_BYTES
from shipyard.errors import ConfigError

KEY = b"bounds-test-key-0123456789"

VALID = """\
sites:
  a:
    hosts:
      h1: {}
templates:
  t:
    commands: {start: [run]}
services:
  api: {template: t, sites: [a]}
"""

# 370 bytes that expand to 9**9 (387 million) strings when every alias is followed.
ALIAS_BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
vars:
  bomb: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(path), secret_key=KEY, environ={})
    return [str(p) for p in caught.value.problems]


@pytest.fixture
def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.timeout(60)
def test_an_alias_bomb_is_refused_at_its_line(project_dir: Path) -> None:
    path = project_dir / "shipyard.yaml"
    path.write_text(VALID + ALIAS_BOMB)
    [problem] = problems_of(path)
    assert problem.startswith("shipyard.yaml:")
    line = int(problem.split(":")[1])
    assert VALID.count("\n") < line <= (VALID + ALIAS_BOMB).count("\n")
    assert "aliases expand to more than" in problem


@pytest.mark.timeout(60)
def test_an_alias_bomb_in_an_included_file_names_that_file(project_dir: Path) -> None:
    (project_dir / "more.yaml").write_text(ALIAS_BOMB.replace("vars:\n  bomb", "vars:\n  b2"))
    path = project_dir / "shipyard.yaml"
    path.write_text("include: [more.yaml]\n" + VALID)
    [problem] = problems_of(path)
    assert problem.startswith("more.yaml:")
    assert "aliases expand to more than" in problem


@pytest.mark.timeout(60)
def test_a_self_referencing_alias_and_deep_nesting_are_errors_not_tracebacks(
    project_dir: Path,
) -> None:
    path = project_dir / "shipyard.yaml"
    path.write_text(VALID + "vars:\n  loop: &x [1, *x]\n")
    assert problems_of(path) == [
        "shipyard.yaml:11:9: vars.loop[1]: an alias refers to the value that contains it (a loop)"
    ]
    nested = "".join("  " * i + f"k{i}:\n" for i in range(300)) + "  " * 300 + "end: 1\n"
    path.write_text(VALID + "vars:\n" + textwrap.indent(nested, "  "))
    [problem] = problems_of(path)
    assert problem.startswith("shipyard.yaml:")
    assert "nested more than" in problem


def test_a_few_ordinary_aliases_still_load(project_dir: Path) -> None:
    path = project_dir / "shipyard.yaml"
    path.write_text(VALID + "vars:\n  base: &base {region: east, zone: 1}\n  copy: *base\n")
    flat = flatten_project(load_project(path), secret_key=KEY, environ={})
    assert flat.loaded.project.vars["copy"] == {"region": "east", "zone": 1}


def test_a_file_larger_than_the_bound_is_refused_by_name(project_dir: Path) -> None:
    path = project_dir / "shipyard.yaml"
    padding = "# " + "x" * 1000 + "\n"
    path.write_text(VALID + padding * (MAX_FILE_BYTES // len(padding) + 1))
    assert problems_of(path) == ["shipyard.yaml: file is larger than 5 MiB"]
    path.write_text("include: [big.yaml]\n" + VALID)
    (project_dir / "big.yaml").write_text(padding * (MAX_FILE_BYTES // len(padding) + 1))
    assert problems_of(path) == ["big.yaml: file is larger than 5 MiB"]


def test_an_include_that_is_not_a_regular_file_is_refused_without_waiting(
    project_dir: Path,
) -> None:
    os.mkfifo(project_dir / "pipe.yaml")
    path = project_dir / "shipyard.yaml"
    path.write_text("include: [pipe.yaml]\n" + VALID)
    assert problems_of(path) == ["pipe.yaml: not a regular file"]


def test_invalid_utf8_names_the_file_and_byte_offset(project_dir: Path) -> None:
    path = project_dir / "shipyard.yaml"
    data = VALID.encode() + b"vars:\n  name: caf\xe9\n"
    path.write_bytes(data)
    offset = data.index(b"\xe9")
    assert problems_of(path) == [f"shipyard.yaml:11:12: invalid UTF-8 at byte offset {offset}"]


def test_invalid_utf8_in_a_template_file_or_secret_file_is_located(project_dir: Path) -> None:
    path = project_dir / "shipyard.yaml"
    with_file = "    commands: {start: [run]}\n    files: {app.conf: app.conf.j2}\n"
    path.write_text(VALID.replace("    commands: {start: [run]}\n", with_file))
    (project_dir / "app.conf.j2").write_bytes(b"ok\nbad \xff here\n")
    assert problems_of(path) == [
        "app.conf.j2:2:5: templates.t.files.app.conf: invalid UTF-8 at byte offset 7",
    ]
    with_secret = '    commands: {start: [run]}\n    env: {TOKEN: "{{ secrets.token }}"}\n'
    secrets = "secrets:\n  token: {file: token.txt}\n"
    path.write_text(VALID.replace("    commands: {start: [run]}\n", with_secret) + secrets)
    (project_dir / "token.txt").write_bytes(b"\xc3\x28")
    assert problems_of(path) == [
        "shipyard.yaml:12:3: secrets.token: cannot read token.txt: invalid UTF-8 at byte offset 0",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name: nothing\n",
        "sites:\n  a:\n    hosts: {h1: {}}\ntemplates:\n  t: {commands: {start: [run]}}\n",
        "services: {}\n",
    ],
    ids=["empty-file", "name-only", "no-services", "empty-services"],
)
def test_a_project_without_services_is_an_error(project_dir: Path, text: str) -> None:
    path = project_dir / "shipyard.yaml"
    path.write_text(text)
    [problem] = problems_of(path)
    assert problem.startswith("shipyard.yaml:")
    assert "no services" in problem


def shipyard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    env.pop("SHIPYARD_DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=120,
    )


def test_validate_plan_and_deploy_of_an_empty_project_exit_2(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("sites:\n  a:\n    hosts: {h1: {}}\n")
    for command in ("validate", "plan", "deploy"):
        result = shipyard(command, cwd=tmp_path)
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "no services" in result.stderr
        assert "Traceback" not in result.stderr
