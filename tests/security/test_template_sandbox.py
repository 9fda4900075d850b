"""Templates are data: every Jinja render (config strings and files) runs in one sandbox.

A payload that reaches Python internals must not run, and is reported as a config error that
names the file, the line and the field, through `plan` (strings) and `validate` (files) alike.
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
from shipyard.errors import ConfigError

KEY = b"sandbox-test-key-0123456789"

# Each reaches for the os module or a callable that changes state; `{marker}` is a path that
# exists afterwards only if the payload ran.
PAYLOADS = [
    "{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ namespace.__init__.__globals__.os.system('touch {marker}') }}",
    "{{ lipsum.__globals__['os'].system('touch {marker}') }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ self._TemplateReference__context }}",
    "{{ range.__globals__ }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(cycler) }}",
    "{% set d = {} %}{{ d.update({'x': 1}) }}{{ d.pop('x') }}",
    "{{ host.labels.append('x') }}",
    "{{ 'x' * 100000000 }}",
    "{{ 10 ** 100000000 }}",
]


def project(start_arg: str, files: str = "") -> str:
    return textwrap.dedent(
        f"""\
        sites:
          a:
            hosts:
              h1: {{}}
        templates:
          t:
            commands: {{start: [run]}}
            env:
              SAFE: plain
              VALUE: "{start_arg}"
        {files}
        services:
          api: {{template: t, sites: [a]}}
        """
    )


def write(directory: Path, text: str, **files: str) -> Path:
    for name, content in files.items():
        (directory / name).write_text(content)
    path = directory / "shipyard.yaml"
    path.write_text(text)
    return path


def quoted(payload: str) -> str:
    return payload.replace("\\", "\\\\").replace('"', '\\"')


@pytest.mark.parametrize("payload", PAYLOADS)
def test_an_unsafe_config_string_is_a_located_config_error_and_never_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: str
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    path = write(tmp_path, project(quoted(payload.replace("{marker}", str(marker)))))
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(path), secret_key=KEY, environ={})
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (
        "shipyard.yaml",
        10,
        "templates.t.env.VALUE",
    )
    assert "unsafe" in problem.message or "larger than" in problem.message
    assert not marker.exists()


@pytest.mark.parametrize("payload", PAYLOADS[:4])
def test_an_unsafe_file_template_names_the_template_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: str
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    text = project("plain", files="    files: {app.conf: app.conf.j2}")
    body = "first line\n{{ instance }}\n" + payload.replace("{marker}", str(marker)) + "\n"
    path = write(tmp_path, text, **{"app.conf.j2": body})
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(path), secret_key=KEY, environ={})
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (
        "app.conf.j2",
        3,
        "templates.t.files.app.conf",
    )
    assert "unsafe" in problem.message
    assert not marker.exists()


def test_an_included_template_is_sandboxed_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "ran"
    text = project("plain", files="    files: {app.conf: app.conf.j2}")
    payload = PAYLOADS[0].replace("{marker}", str(marker))
    path = write(tmp_path, text, **{"app.conf.j2": '{% include "part.j2" %}\n', "part.j2": payload})
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(path), secret_key=KEY, environ={})
    assert "unsafe" in caught.value.problems[0].message
    assert not marker.exists()


def test_safe_templates_still_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = project("{{ host.labels | join(',') }}-{{ range(3) | list | length }}-{{ 2 ** 10 }}")
    flat = flatten_project(load_project(write(tmp_path, text)), secret_key=KEY, environ={})
    assert flat.instances["api@h1"].config["env"]["VALUE"] == "-3-1024"


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


def test_plan_refuses_a_string_payload_and_validate_a_file_payload(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    payload = PAYLOADS[0].replace("{marker}", str(marker))
    strings = tmp_path / "strings"
    strings.mkdir()
    write(strings, project(quoted(payload)))
    planned = shipyard("plan", cwd=strings)
    assert planned.returncode == 2, planned.stdout + planned.stderr
    assert "shipyard.yaml:10" in planned.stderr
    assert "templates.t.env.VALUE" in planned.stderr
    assert "unsafe" in planned.stderr
    assert "Traceback" not in planned.stderr

    files = tmp_path / "files"
    files.mkdir()
    write(
        files,
        project("plain", files="    files: {app.conf: app.conf.j2}"),
        **{"app.conf.j2": "x\n" + payload + "\n"},
    )
    validated = shipyard("validate", cwd=files)
    assert validated.returncode == 2, validated.stdout + validated.stderr
    assert "app.conf.j2:2" in validated.stderr
    assert "templates.t.files.app.conf" in validated.stderr
    assert "unsafe" in validated.stderr
    assert not marker.exists()


def test_templates_are_read_only_from_inside_the_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    monkeypatch.chdir(project_dir)
    (tmp_path / "outside.txt").write_text("not the project's\n")
    (project_dir / "linked.j2").symlink_to(tmp_path / "outside.txt")
    text = project("plain", files="    files: {app.conf: linked.j2}")
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(write(project_dir, text)), secret_key=KEY, environ={})
    assert [str(p) for p in caught.value.problems] == [
        "linked.j2: templates.t.files.app.conf: "
        "template file is outside the project directory (a link?)"
    ]
    text = project("plain", files="    files: {app.conf: app.conf.j2}")
    (project_dir / "app.conf.j2").write_text('{% include "../outside.txt" %}\n')
    with pytest.raises(ConfigError) as caught:
        flatten_project(load_project(write(project_dir, text)), secret_key=KEY, environ={})
    [problem] = caught.value.problems
    assert problem.file == "app.conf.j2"
    assert "../outside.txt" in problem.message
