"""supervisord: program files, a per-host main config, supervisorctl argv and its status parser.

supervisord reads its files with configparser (a value ends at whitespace followed by `;` or `#`,
and can't hold a line break), expands `%(name)s` in most values (`%` is written `%%`), splits
`command=` with POSIX `shlex.split`, and splits `environment=` with non-POSIX `shlex` (quotes, no
escapes) before stripping quote characters from both ends of each value. Before any of that, it
replaces the text `%(here)s` in every value, escaped or not, and it expands log file names twice.
The writers below quote for exactly that. What it can't carry (a line break, the text `%(here)s`,
an environment value holding both kinds of quote, or starting or ending with one, or a `;`/`#`
after whitespace) goes through a launcher script instead: see `needs_launcher`, `render_launcher`,
`launcher_argv`, or let `program_files` decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources

from shipyard.commands.script import (
    SHELL,
    Argv,
    Script,
    UnsafeValue,
    check_argv,
    check_env,
    check_name,
    check_path,
    command_script,
    join,
    quote,
    resolve_program,
    script,
)

STATES = frozenset(
    {"STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN"}
)
# configparser starts an inline comment at `;` or `#` after any whitespace character.
_INLINE_COMMENT = re.compile(r"\s[;#]")
# supervisord replaces this text in every value before its own `%` expansion (expand_here).
_HERE = "%(here)s"
_AF_UNIX_PATH_MAX = 107
# The umask of a host's supervisord, so of its programs and of the log files it creates.
LOG_UMASK = "027"


def program_name(service: str, color: str | None = None) -> str:
    """The program of a service (`api`) or of one of its blue/green slots (`api-blue`)."""
    name = service if color is None else f"{service}-{color}"
    return check_name(name, "program name")


@dataclass(frozen=True)
class SupervisorPaths:
    """Where one host's own supervisord keeps its config, socket, pid file, log and programs."""

    base_dir: str

    def __post_init__(self) -> None:
        _ini_value(check_path(self.base_dir, "supervisor directory"), "supervisor directory")
        if any(c.isspace() for c in self.base_dir):
            raise UnsafeValue(f"supervisor directory must not contain spaces: {self.base_dir!r}")
        if len(self.socket.encode()) > _AF_UNIX_PATH_MAX:
            raise UnsafeValue(f"socket path too long for a unix socket: {self.socket!r}")

    @property
    def conf(self) -> str:
        return f"{self.base_dir.rstrip('/')}/supervisord.conf"

    @property
    def socket(self) -> str:
        return f"{self.base_dir.rstrip('/')}/supervisor.sock"

    @property
    def pidfile(self) -> str:
        return f"{self.base_dir.rstrip('/')}/supervisord.pid"

    @property
    def logfile(self) -> str:
        return f"{self.base_dir.rstrip('/')}/supervisord.log"

    @property
    def programs(self) -> str:
        return f"{self.base_dir.rstrip('/')}/programs"

    def program(self, name: str) -> str:
        return f"{self.programs}/{check_name(name, 'program name')}.conf"

    def launcher(self, name: str) -> str:
        return f"{self.base_dir.rstrip('/')}/launchers/{check_name(name, 'program name')}.sh"


def _ini_value(value: str, what: str) -> str:
    """`value` written for supervisord's configparser, `%` doubled for its expansion."""
    if "\n" in value or "\r" in value or "\0" in value:
        raise UnsafeValue(f"supervisord can't hold a line break or NUL in {what}: {value!r}")
    if _INLINE_COMMENT.search(value) or value != value.strip() or _HERE in value:
        raise UnsafeValue(f"supervisord would cut {what} short: {value!r}")
    return value.replace("%", "%%")


def _log_file(path: str) -> str:
    """A program's log file name: supervisord expands it twice, so no `%` at all."""
    if "%" in check_path(path, "log file"):
        raise UnsafeValue(f"supervisord expands a log file name twice; no % please: {path!r}")
    return _ini_value(path, "log file")


def quote_command(argv: Sequence[str]) -> str:
    """`argv` as a supervisord `command=` value that `shlex.split` gives back exactly."""
    words = []
    for arg in check_argv(argv):
        if "\n" in arg or "\r" in arg or _HERE in arg:
            raise UnsafeValue(f"supervisord can't hold a line break or {_HERE} in: {arg!r}")
        # Single quotes keep everything but `'`; `;` and `#` go outside them, backslash-escaped,
        # so none of them follows whitespace where configparser would see a comment.
        word = "'" + arg.replace("'", "'\\''").replace(";", "'\\;'").replace("#", "'\\#'") + "'"
        words.append(word)
    return " ".join(words).replace("%", "%%")


def quote_environment(env: Mapping[str, str]) -> str:
    """`env` as a supervisord `environment=` value (`KEY="value",...`) it parses back exactly."""
    pairs = []
    for name, value in sorted(check_env(env).items()):
        what = f"environment variable {name}"
        if value[:1] in {"'", '"'} or value[-1:] in {"'", '"'}:
            raise UnsafeValue(f"supervisord strips quotes around {what}: {value!r}")
        if '"' not in value:
            quote_char = '"'
        elif "'" not in value:
            quote_char = "'"
        else:
            raise UnsafeValue(f"supervisord can't hold both kinds of quote in {what}: {value!r}")
        if "\n" in value or "\r" in value or _INLINE_COMMENT.search(value) or _HERE in value:
            raise UnsafeValue(f"supervisord can't hold {what}: {value!r}")
        pairs.append(f"{name}={quote_char}{value}{quote_char}")
    return ",".join(pairs).replace("%", "%%")


def needs_launcher(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """True when supervisord's format can't carry `argv` and `env` as they are."""
    try:
        quote_command(argv)
        quote_environment(env)
    except UnsafeValue:
        check_argv(argv)  # a NUL or an empty command fails everywhere: say so now
        check_env(env)
        return True
    return False


def render_launcher(argv: Sequence[str], env: Mapping[str, str], directory: str) -> str:
    """A sh script that sets `env`, enters `directory` and execs `argv`: holds any value."""
    return command_script(resolve_program(argv, directory), cwd=directory, env=env).text


def launcher_argv(launcher_path: str) -> Argv:
    """The program command that runs a launcher written by `render_launcher`."""
    return (SHELL, check_path(launcher_path, "launcher path"))


def render_program(
    name: str,
    *,
    argv: Sequence[str],
    directory: str,
    env: Mapping[str, str],
    stdout_log: str,
    stderr_log: str,
    autostart: bool = True,
    start_seconds: int = 1,
    stop_wait_seconds: int = 10,
    user: str | None = None,
) -> str:
    """A `[program:<name>]` file; raises UnsafeValue when a value needs a launcher instead.

    A relative program path (`venv/bin/gunicorn`) is resolved against `directory`: supervisord
    would look for it relative to its own working directory.
    """
    argv = resolve_program(argv, directory)
    lines = [
        "; Generated by Shipyard; rewritten on every deployment.",
        f"[program:{check_name(name, 'program name')}]",
        f"command={quote_command(argv)}",
        f"directory={_ini_value(check_path(directory, 'directory'), 'directory')}",
    ]
    if env:
        lines.append(f"environment={quote_environment(env)}")
    if user is not None:
        lines.append(f"user={check_name(user, 'user')}")
    lines += [
        f"autostart={'true' if autostart else 'false'}",
        "autorestart=true",
        f"startsecs={start_seconds}",
        "startretries=3",
        "stopsignal=TERM",
        f"stopwaitsecs={stop_wait_seconds}",
        "stopasgroup=true",
        "killasgroup=true",
        f"stdout_logfile={_log_file(stdout_log)}",
        "stdout_logfile_maxbytes=10MB",
        "stdout_logfile_backups=3",
        f"stderr_logfile={_log_file(stderr_log)}",
        "stderr_logfile_maxbytes=10MB",
        "stderr_logfile_backups=3",
    ]
    return "\n".join(lines) + "\n"


def render_supervisord_conf(paths: SupervisorPaths) -> str:
    """A main config for one host's own supervisord, including `<base_dir>/programs/*.conf`."""
    socket = _ini_value(paths.socket, "socket path")
    return "\n".join(
        [
            "; Generated by Shipyard: this host's own supervisord.",
            "[unix_http_server]",
            f"file={socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            f"logfile={_ini_value(paths.logfile, 'log file')}",
            "logfile_maxbytes=10MB",
            "logfile_backups=3",
            f"pidfile={_ini_value(paths.pidfile, 'pid file')}",
            f"childlogdir={_ini_value(paths.base_dir, 'log directory')}",
            # Log files it creates (its own, its programs') are 0640, directories 0750.
            f"umask={LOG_UMASK}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{socket}",
            "",
            "[include]",
            f"files={_ini_value(paths.programs, 'programs directory')}/*.conf",
            "",
        ]
    )


def supervisord_argv(conf: str, *, foreground: bool = False) -> Argv:
    """Starts supervisord on `conf` (daemonized unless `foreground`)."""
    return ("supervisord", *(("-n",) if foreground else ()), "-c", conf)


def supervisorctl_argv(conf: str, *args: str) -> Argv:
    """Any supervisorctl command against the supervisord of `conf`."""
    return ("supervisorctl", "-c", conf, *args)


def reread_argv(conf: str) -> Argv:
    """Makes supervisord read changed program files (applied by `update`)."""
    return supervisorctl_argv(conf, "reread")


def update_argv(conf: str, *names: str) -> Argv:
    """Adds, changes (restarting it) or removes the named programs as their files now say."""
    return supervisorctl_argv(conf, "update", *(check_name(n, "program name") for n in names))


def start_argv(conf: str, name: str) -> Argv:
    return supervisorctl_argv(conf, "start", check_name(name, "program name"))


def stop_argv(conf: str, name: str) -> Argv:
    return supervisorctl_argv(conf, "stop", check_name(name, "program name"))


def restart_argv(conf: str, name: str) -> Argv:
    return supervisorctl_argv(conf, "restart", check_name(name, "program name"))


def status_argv(conf: str, *names: str) -> Argv:
    """Program states; exits 3 when one is not running, 4 when unknown (run with check=False)."""
    return supervisorctl_argv(conf, "status", *(check_name(n, "program name") for n in names))


def parse_status(lines: Iterable[str]) -> dict[str, str]:
    """Program name -> state (RUNNING, STOPPED, FATAL, ...) from `supervisorctl status` output.

    Lines for programs supervisord does not know (`x: ERROR (no such process)`) and any other
    line are left out, so a missing name means "not loaded".
    """
    states = {}
    for line in lines:
        words = line.split()
        if len(words) >= 2 and words[1] in STATES:
            states[words[0]] = words[1]
    return states


def parse_status_reasons(lines: Iterable[str]) -> dict[str, str]:
    """Program name -> why it is not running (supervisord's spawn error, such as `can't find
    command`, else its description), from the RPC helper's `status` lines that give one."""
    reasons = {}
    for line in lines:
        words = line.split(maxsplit=2)
        if len(words) == 3 and words[1] in STATES:
            reasons[words[0]] = words[2]
    return reasons


def program_files(
    paths: SupervisorPaths,
    name: str,
    *,
    argv: Sequence[str],
    directory: str,
    env: Mapping[str, str],
    logs_dir: str,
    autostart: bool = True,
    start_seconds: int = 1,
    stop_wait_seconds: int = 10,
    user: str | None = None,
) -> dict[str, str]:
    """Path -> content of what program `name` needs: its program file, plus a launcher if any value
    needs one. Logs go to `<logs_dir>/<name>.out.log` and `.err.log`."""
    files = {}
    if needs_launcher(argv, env):
        files[paths.launcher(name)] = render_launcher(argv, env, directory)
        argv, env = launcher_argv(paths.launcher(name)), {}
    files[paths.program(name)] = render_program(
        name,
        argv=argv,
        directory=directory,
        env=env,
        stdout_log=f"{logs_dir.rstrip('/')}/{name}.out.log",
        stderr_log=f"{logs_dir.rstrip('/')}/{name}.err.log",
        autostart=autostart,
        start_seconds=start_seconds,
        stop_wait_seconds=stop_wait_seconds,
        user=user,
    )
    return files


# The XML-RPC helper, a real module that runs on the host (see supervisor_rpc), as the text
# `rpc_argv` ships; read once.
RPC_HELPER = (resources.files("shipyard.commands") / "supervisor_rpc.py").read_text()


def rpc_argv(conf: str, action: str, *names: str, python: str = "python3") -> Argv:
    """The XML-RPC helper for `action` (apply, status, remove) on the named programs of `conf`."""
    if action not in ("apply", "status", "remove"):
        raise UnsafeValue(f"unknown supervisor action {action!r}")
    checked = (check_name(n, "program name") for n in names)
    return (python, "-I", "-c", RPC_HELPER, check_path(conf, "supervisord.conf"), action, *checked)


def apply_programs_script(
    paths: SupervisorPaths, programs: Sequence[tuple[str, str | None]]
) -> Script:
    """Link each live release's program file into supervisord's include, then (re)start them all
    in one XML-RPC session (see supervisor_rpc): new programs added, changed ones replaced, the rest
    restarted, none waited for.

    `programs` holds (name, program file or None to keep the link as it is). The program file
    lives in the release, so switching `current` switches it too.
    """
    names = [check_name(name, "program name") for name, _ in programs]
    if not names:
        return script(["true"])
    links = [
        f"ln -sfn -- {quote(file)} {quote(paths.program(name))}"
        for name, file in programs
        if file is not None
    ]
    return script(
        [
            f"mkdir -p -- {quote(paths.programs)}",
            *links,
            join(rpc_argv(paths.conf, "apply", *names)),
        ]
    )


def remove_programs_script(paths: SupervisorPaths, names: Sequence[str]) -> Script:
    """Unlink each program's file from supervisord's include (so it does not start at boot),
    then stop and remove the programs in one XML-RPC session. The releases stay."""
    checked = [check_name(name, "program name") for name in names]
    if not checked:
        return script(["true"])
    unlinks = [f"rm -f -- {quote(paths.program(name))}" for name in checked]
    return script([*unlinks, join(rpc_argv(paths.conf, "remove", *checked))])
