"""Program files say exactly what supervisord should run; what it can't carry goes via a launcher."""

from __future__ import annotations

import configparser
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.commands.script import UnsafeValue
from shipyard.commands.supervisor import (
    SupervisorPaths,
    needs_launcher,
    parse_status,
    parse_status_reasons,
    program_files,
    program_name,
    quote_command,
    quote_environment,
    render_launcher,
    render_program,
    render_supervisord_conf,
    reread_argv,
    restart_argv,
    start_argv,
    status_argv,
    stop_argv,
    supervisord_argv,
    update_argv,
)

# supervisord's own expansions: a value that reached them unescaped would change.
EXPANSIONS = {"here": "/HERE", "program_name": "PROGRAM", "ENV_HOME": "/root"}


def supervisord_reads(text: str, section: str, key: str) -> str:
    """A value as supervisord 4.2 reads it: configparser with inline comments, the text
    `%(here)s` replaced (options.expand_here), then `%` expansion."""
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(text)
    return parser.get(section, key).replace("%(here)s", "/HERE") % EXPANSIONS


def supervisord_environment(value: str) -> dict[str, str]:
    """supervisor.datatypes.dict_of_key_value_pairs (4.2.5), which parses `environment=`."""
    lexer = shlex.shlex(value)
    lexer.wordchars += "/.+-():"
    tokens = list(lexer)
    pairs = {}
    for i in range(0, len(tokens), 4):
        key, equals, word = tokens[i : i + 3]
        assert equals == "="
        pairs[key] = word.strip("'\"")
    return pairs


def program(argv: list[str], env: dict[str, str]) -> str:
    return render_program(
        "web",
        argv=argv,
        directory="/srv/api/current",
        env=env,
        stdout_log="/srv/api/logs/web.out.log",
        stderr_log="/srv/api/logs/web.err.log",
    )


ARGS = [
    "plain",
    "",
    "two words",
    "it's",
    'say "hi"',
    "$HOME ${PATH}",
    "100% %(program_name)s %%",
    "back\\slash\\",
    "a ;b #c",
    ";starts",
    "#starts",
    "  padded  ",
    "naïve ✓",
]
CARRIED_VALUES = [
    "plain",
    "",
    "two words",
    "it's here",
    'say "hi" now',
    "a,b=c",
    "$HOME ${PATH}",
    "100% %(program_name)s %% (here)s",
    "back\\slash\\",
    "no#comment;here",
    "  padded  ",
    "naïve ✓",
]


def test_a_command_is_read_back_by_supervisord_word_for_word() -> None:
    text = program(["/usr/bin/prog", *ARGS], {})

    assert shlex.split(supervisord_reads(text, "program:web", "command")) == [
        "/usr/bin/prog",
        *ARGS,
    ]


def test_an_environment_is_read_back_by_supervisord_value_for_value() -> None:
    env = {f"V{i}": value for i, value in enumerate(CARRIED_VALUES)}

    text = program(["prog"], env)

    assert supervisord_environment(supervisord_reads(text, "program:web", "environment")) == env


@pytest.mark.parametrize(
    "value",
    [
        "'quoted'",
        'ends with "',
        "both ' and \"",
        "line\nbreak",
        "carriage\rreturn",
        "looks ;like a comment",
        "looks #like a comment",
        "the text %(here)s",
    ],
)
def test_an_environment_value_supervisord_cannot_carry_needs_a_launcher(value: str) -> None:
    assert needs_launcher(["prog"], {"V": value})
    with pytest.raises(UnsafeValue, match="V"):
        quote_environment({"V": value})


@pytest.mark.parametrize("arg", ["a\nb", "a\rb", "at %(here)s"])
def test_a_line_break_or_the_text_here_in_the_command_needs_a_launcher(arg: str) -> None:
    assert needs_launcher(["prog", arg], {})
    with pytest.raises(UnsafeValue, match="line break"):
        quote_command(["prog", arg])


def test_what_supervisord_can_carry_needs_no_launcher() -> None:
    assert not needs_launcher(["prog", *ARGS], {f"V{i}": v for i, v in enumerate(CARRIED_VALUES)})


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["prog", "nul\0"], {}),
        (["prog"], {"V": "nul\0"}),
        (["prog"], {"BAD-NAME": "x"}),
        ([], {}),
    ],
    ids=["nul-in-argv", "nul-in-env", "bad-env-name", "empty-command"],
)
def test_what_no_process_could_get_is_refused_even_with_a_launcher(
    argv: list[str], env: dict[str, str]
) -> None:
    with pytest.raises(UnsafeValue):
        needs_launcher(argv, env)


def test_a_program_file_holds_the_settings_that_make_stops_clean() -> None:
    text = program(["prog"], {"A": "1"})
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
    parser.read_string(text)

    assert dict(parser["program:web"]) == {
        "command": "'prog'",
        "directory": "/srv/api/current",
        "environment": 'A="1"',
        "autostart": "true",
        "autorestart": "true",
        "startsecs": "1",
        "startretries": "3",
        "stopsignal": "TERM",
        "stopwaitsecs": "10",
        "stopasgroup": "true",
        "killasgroup": "true",
        "stdout_logfile": "/srv/api/logs/web.out.log",
        "stdout_logfile_maxbytes": "10MB",
        "stdout_logfile_backups": "3",
        "stderr_logfile": "/srv/api/logs/web.err.log",
        "stderr_logfile_maxbytes": "10MB",
        "stderr_logfile_backups": "3",
    }


def test_a_percent_in_a_log_file_name_is_refused_since_supervisord_expands_it_twice() -> None:
    with pytest.raises(UnsafeValue, match="twice"):
        render_program(
            "web", argv=["p"], directory="/srv", env={}, stdout_log="/l/100%", stderr_log="/l"
        )


def test_a_percent_in_the_directory_survives_supervisords_expansion() -> None:
    text = render_program(
        "web", argv=["p"], directory="/srv/100%", env={}, stdout_log="/l", stderr_log="/l"
    )

    assert supervisord_reads(text, "program:web", "directory") == "/srv/100%"


def test_program_files_are_one_file_when_supervisord_can_carry_everything() -> None:
    paths = SupervisorPaths("/srv/sup")

    files = program_files(
        paths, "web", argv=["prog"], directory="/srv/web", env={"A": "1"}, logs_dir="/srv/logs"
    )

    assert list(files) == ["/srv/sup/programs/web.conf"]
    assert "stdout_logfile=/srv/logs/web.out.log" in files["/srv/sup/programs/web.conf"]


def test_a_launcher_carries_line_breaks_and_anything_else_to_the_process(tmp_path: Path) -> None:
    paths = SupervisorPaths(str(tmp_path / "sup"))
    env = {"MULTI": "line one\nline two", "QUOTES": "both ' and \"", "PCT": "100%"}
    dump = "import json, os, sys; print(json.dumps([sys.argv[1:], os.getcwd(), dict(os.environ)]))"
    argv = [sys.executable, "-c", dump, "a\nb", "it's"]

    files = program_files(
        paths, "web", argv=argv, directory=str(tmp_path), env=env, logs_dir=str(tmp_path)
    )
    launcher = files[paths.launcher("web")]
    command = supervisord_reads(files[paths.program("web")], "program:web", "command")
    result = subprocess.run(["/bin/sh", "-c", launcher], capture_output=True, text=True, check=True)

    assert shlex.split(command) == ["/bin/sh", paths.launcher("web")]
    assert "environment" not in files[paths.program("web")]
    got_argv, cwd, environ = json.loads(result.stdout)
    assert got_argv == ["a\nb", "it's"]
    assert cwd == str(tmp_path)
    assert {k: environ[k] for k in env} == env


def test_the_main_config_serves_a_socket_of_its_own_and_includes_the_programs() -> None:
    paths = SupervisorPaths("/srv/host1/supervisor")
    parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)

    parser.read_string(render_supervisord_conf(paths))

    assert parser["unix_http_server"]["file"] == "/srv/host1/supervisor/supervisor.sock"
    assert parser["supervisorctl"]["serverurl"] == "unix:///srv/host1/supervisor/supervisor.sock"
    assert parser["supervisord"]["pidfile"] == "/srv/host1/supervisor/supervisord.pid"
    assert parser["include"]["files"] == "/srv/host1/supervisor/programs/*.conf"
    assert parser.has_section("rpcinterface:supervisor")


@pytest.mark.parametrize(
    ("base_dir", "message"),
    [
        ("relative", "absolute"),
        ("/with space", "spaces"),
        ("/" + "x" * 100, "too long"),
        ("/a ;b", "cut"),
    ],
)
def test_a_supervisor_directory_it_could_not_use_is_refused(base_dir: str, message: str) -> None:
    with pytest.raises(UnsafeValue, match=message):
        SupervisorPaths(base_dir)


C = "/h/supervisord.conf"


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (supervisord_argv(C), ("supervisord", "-c", C)),
        (supervisord_argv(C, foreground=True), ("supervisord", "-n", "-c", C)),
        (reread_argv(C), ("supervisorctl", "-c", C, "reread")),
        (update_argv(C, "web"), ("supervisorctl", "-c", C, "update", "web")),
        (update_argv(C), ("supervisorctl", "-c", C, "update")),
        (start_argv(C, "web"), ("supervisorctl", "-c", C, "start", "web")),
        (stop_argv(C, "web"), ("supervisorctl", "-c", C, "stop", "web")),
        (restart_argv(C, "web"), ("supervisorctl", "-c", C, "restart", "web")),
        (status_argv(C, "a", "b"), ("supervisorctl", "-c", C, "status", "a", "b")),
    ],
)
def test_supervisorctl_commands_are_argv_against_the_hosts_own_config(
    argv: tuple[str, ...], expected: tuple[str, ...]
) -> None:
    assert argv == expected


@pytest.mark.parametrize(
    ("service", "color", "name"),
    [("api", None, "api"), ("api", "blue", "api-blue"), ("api.v2", "green", "api.v2-green")],
)
def test_a_program_is_named_after_its_service_and_slot(
    service: str, color: str | None, name: str
) -> None:
    assert program_name(service, color) == name


STATUS = """\
api                              RUNNING   pid 4242, uptime 0:01:02
api-blue                         STOPPED   Not started
api-green                        FATAL     Exited too quickly (process log may have details)
worker:worker_00                 BACKOFF   Exited too quickly (process log may have details)
gone: ERROR (no such process)
unix:///srv/supervisor.sock no such file
"""


def test_status_output_is_read_as_program_states() -> None:
    assert parse_status(STATUS.splitlines()) == {
        "api": "RUNNING",
        "api-blue": "STOPPED",
        "api-green": "FATAL",
        "worker:worker_00": "BACKOFF",
    }


def test_status_lines_give_why_a_program_is_not_running() -> None:
    lines = [
        "api RUNNING ",
        "api-green FATAL can't find command '/srv/api/current/venv/bin/gunicorn'",
        "worker BACKOFF Exited too quickly (process log may have details)",
    ]

    assert parse_status_reasons(lines) == {
        "api-green": "can't find command '/srv/api/current/venv/bin/gunicorn'",
        "worker": "Exited too quickly (process log may have details)",
    }
    assert parse_status(lines)["api-green"] == "FATAL"


@pytest.mark.parametrize(
    ("start", "program"),
    [
        ("venv/bin/gunicorn", "/srv/api/current/venv/bin/gunicorn"),
        ("./run.sh", "/srv/api/current/run.sh"),
        ("gunicorn", "gunicorn"),  # a bare name: looked up on PATH
        ("/usr/bin/env", "/usr/bin/env"),
    ],
)
def test_a_relative_program_path_is_resolved_against_the_release(start: str, program: str) -> None:
    text = render_program(
        "api",
        argv=[start, "app:wsgi"],
        directory="/srv/api/current",
        env={},
        stdout_log="/l/o",
        stderr_log="/l/e",
    )

    assert shlex.split(supervisord_reads(text, "program:api", "command")) == [program, "app:wsgi"]
    launcher = render_launcher([start, "a\nb"], {}, "/srv/api/current")
    assert f"exec {shlex.quote(program)} " in launcher


def test_the_hosts_supervisord_creates_logs_that_others_cannot_read() -> None:
    text = render_supervisord_conf(SupervisorPaths("/srv/supervisor"))

    assert supervisord_reads(text, "supervisord", "umask") == "027"
