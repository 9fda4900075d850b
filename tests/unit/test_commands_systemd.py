"""A unit file runs exactly the argv and environment it was given, and systemctl is plain argv."""

from __future__ import annotations

import os
import re
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from shipyard.commands.script import UnsafeValue
from shipyard.commands.systemd import (
    apply_units_script,
    daemon_reload_argv,
    disable_units_script,
    enable_argv,
    is_active_argv,
    parse_is_active,
    parse_states,
    quote_word,
    remove_units_script,
    render_unit,
    restart_argv,
    start_argv,
    states_argv,
    stop_argv,
    unit_name,
    unit_path,
)

VALUES = [
    "plain",
    "",
    "two words",
    "it's",
    'say "hi"',
    "$HOME ${PATH} $$",
    "100% %n %%",
    "back\\slash\\",
    "line one\nline two\n",
    "tab\there\rand\x01bell\x7f",
    "; not a separator",
    "naïve ✓",
]
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


def systemd_words(rvalue: str, *, dollar: bool) -> list[str]:
    """Words as systemd reads a setting: specifiers (`%%`), quoted words with C escapes, `$$`."""
    rvalue = rvalue.replace("%%", "%")
    words = []
    for match in re.finditer(r'"((?:[^"\\]|\\.)*)"', rvalue):
        word = re.sub(
            r"\\(x[0-9a-f]{2}|.)",
            lambda m: chr(int(m[1][1:], 16)) if m[1][0] == "x" else _ESCAPES[m[1]],
            match[1],
        )
        words.append(word.replace("$$", "$") if dollar else word)
    assert " ".join(f'"{w}"' for w in re.findall(r'"((?:[^"\\]|\\.)*)"', rvalue)) == rvalue
    return words


def setting(unit: str, key: str) -> list[str]:
    return [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith(f"{key}=")]


def test_exec_start_gives_back_every_argument_to_systemd() -> None:
    unit = render_unit("web", argv=["/usr/bin/prog", *VALUES], directory="/srv", env={})

    [exec_start] = setting(unit, "ExecStart")

    assert systemd_words(exec_start, dollar=True) == ["/usr/bin/prog", *VALUES]


def test_environment_lines_give_back_every_value_to_systemd() -> None:
    env = {f"V{i}": value for i, value in enumerate(VALUES)}

    unit = render_unit("web", argv=["/bin/prog"], directory="/srv", env=env)

    pairs = [systemd_words(line, dollar=False)[0] for line in setting(unit, "Environment")]
    assert dict(pair.split("=", 1) for pair in pairs) == env


def test_a_unit_restarts_on_failure_in_its_working_directory() -> None:
    unit = render_unit("api on h1", argv=["/bin/prog"], directory="/srv/100%/current", env={})

    assert setting(unit, "WorkingDirectory") == ["/srv/100%%/current"]
    assert setting(unit, "Restart") == ["on-failure"]
    assert setting(unit, "Type") == ["simple"]
    assert setting(unit, "Description") == ["api on h1"]
    assert setting(unit, "WantedBy") == ["multi-user.target"]


@pytest.mark.parametrize(
    "render",
    [
        lambda: render_unit("d", argv=["/bin/p", "nul\0"], directory="/srv", env={}),
        lambda: render_unit("d", argv=["/bin/p"], directory="relative", env={}),
        lambda: render_unit("d", argv=["/bin/p"], directory="/srv\n[Service]", env={}),
        lambda: render_unit("two\nlines", argv=["/bin/p"], directory="/srv", env={}),
        lambda: render_unit("d", argv=["/bin/p"], directory="/srv", env={"A-B": "x"}),
        lambda: render_unit("d", argv=[], directory="/srv", env={}),
    ],
    ids=[
        "nul",
        "relative-directory",
        "directory-injects-a-line",
        "description-injects",
        "env-name",
        "empty",
    ],
)
def test_a_unit_refuses_values_that_would_change_its_meaning(render: Callable[[], object]) -> None:
    with pytest.raises(UnsafeValue):
        render()


def test_quote_word_doubles_dollars_only_where_systemd_substitutes_them() -> None:
    assert quote_word("$A", dollar=True) == '"$$A"'
    assert quote_word("$A") == '"$A"'


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (daemon_reload_argv(), ("systemctl", "daemon-reload")),
        (enable_argv("shipyard-api.service"), ("systemctl", "enable", "shipyard-api.service")),
        (start_argv("shipyard-api.service"), ("systemctl", "start", "shipyard-api.service")),
        (stop_argv("shipyard-api.service"), ("systemctl", "stop", "shipyard-api.service")),
        (restart_argv("shipyard-api.service"), ("systemctl", "restart", "shipyard-api.service")),
        (
            is_active_argv("shipyard-api.service"),
            ("systemctl", "is-active", "shipyard-api.service"),
        ),
        (unit_name("api"), "shipyard-api.service"),
        (unit_name("api", "blue"), "shipyard-api-blue.service"),
        (unit_path("shipyard-api.service"), "/etc/systemd/system/shipyard-api.service"),
    ],
)
def test_systemctl_commands_are_argv(argv: object, expected: object) -> None:
    assert argv == expected


@pytest.mark.parametrize(
    ("stdout", "state"),
    [("active\n", "active"), ("inactive\n", "inactive"), ("failed", "failed"), ("", "unknown")],
)
def test_is_active_output_is_read_as_a_state(stdout: str, state: str) -> None:
    assert parse_is_active(stdout) == state


def test_units_are_installed_then_reloaded_enabled_and_restarted_once_for_all(
    tmp_path: Path,
) -> None:
    # Runs for real with a systemctl on PATH that only records its arguments.
    bin_dir, units, log = tmp_path / "bin", tmp_path / "units", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_dir / "systemctl").chmod(0o755)
    source = tmp_path / "release-unit.service"
    source.write_text("[Service]\nExecStart=/bin/true\n")
    built = apply_units_script(
        str(units), [("shipyard-api.service", str(source)), ("shipyard-web.service", None)]
    )

    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["sh", "-c", built.text], check=True, env=env)

    installed = units / "shipyard-api.service"
    assert installed.read_text() == source.read_text()
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600
    assert not (units / "shipyard-web.service").exists()  # None: keep what is installed
    assert log.read_text().splitlines() == [
        "daemon-reload",
        "enable --quiet shipyard-api.service shipyard-web.service",
        "restart shipyard-api.service shipyard-web.service",
    ]


@pytest.mark.parametrize(
    ("stdout", "states"),
    [
        ("active\nactive\n", {"a.service": "RUNNING", "b.service": "RUNNING"}),
        ("activating\nfailed\n", {"a.service": "STARTING", "b.service": "FATAL"}),
        ("inactive\n", {"a.service": "STOPPED"}),  # cut short: b unknown, hence not running
        ("", {}),
    ],
)
def test_is_active_lines_are_read_as_states_in_unit_order(
    stdout: str, states: dict[str, str]
) -> None:
    assert parse_states(stdout, ["a.service", "b.service"]) == states
    assert states_argv("a.service", "b.service") == (
        "systemctl",
        "is-active",
        "a.service",
        "b.service",
    )


def test_a_relative_program_path_is_resolved_against_the_working_directory() -> None:
    unit = render_unit("d", argv=["venv/bin/gunicorn", "app"], directory="/srv/api/current", env={})

    assert systemd_words(setting(unit, "ExecStart")[0], dollar=True) == [
        "/srv/api/current/venv/bin/gunicorn",
        "app",
    ]


def test_a_unit_keeps_what_it_writes_from_others_and_logs_where_it_is_told() -> None:
    unit = render_unit(
        "d",
        argv=["/bin/p"],
        directory="/srv",
        env={},
        stdout_log="/srv/api/logs/stdout.log",
        stderr_log="/srv/api/logs/stderr.log",
    )

    assert setting(unit, "UMask") == ["0027"]
    assert setting(unit, "StandardOutput") == ["append:/srv/api/logs/stdout.log"]
    assert setting(unit, "StandardError") == ["append:/srv/api/logs/stderr.log"]


def _recording_systemctl(tmp_path: Path) -> tuple[dict[str, str], Path]:
    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    (bin_dir / "systemctl").write_text(f'#!/bin/sh\necho "$*" >> {log}\n')
    (bin_dir / "systemctl").chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def test_disable_stops_the_units_for_good_and_keeps_their_files(tmp_path: Path) -> None:
    env, log = _recording_systemctl(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    (units / "shipyard-api.service").write_text("[Service]\n")

    subprocess.run(["sh", "-c", disable_units_script(["shipyard-api.service"]).text],
                   check=True, env=env)  # fmt: skip

    assert log.read_text().splitlines() == ["disable --now --quiet shipyard-api.service"]
    assert (units / "shipyard-api.service").exists()  # for enable


def test_remove_stops_and_disables_the_units_then_removes_their_files(tmp_path: Path) -> None:
    env, log = _recording_systemctl(tmp_path)
    units = tmp_path / "units"
    units.mkdir()
    (units / "shipyard-api.service").write_text("[Service]\n")

    built = remove_units_script(str(units), ["shipyard-api.service"])
    subprocess.run(["sh", "-c", built.text], check=True, env=env)

    assert not (units / "shipyard-api.service").exists()
    assert log.read_text().splitlines() == [
        "disable --now --quiet shipyard-api.service",
        "daemon-reload",
    ]
    assert disable_units_script([]).text.split()[-1] == "true"  # nothing to do
