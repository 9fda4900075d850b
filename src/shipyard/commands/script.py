"""Shell scripts as values, and the checks every value interpolated into one passes first."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from shipyard.errors import ShipyardError

Argv = tuple[str, ...]
SHELL = "/bin/sh"
# Linux refuses a single argv element longer than this (MAX_ARG_STRLEN); longer scripts go on stdin.
MAX_ARGV_SCRIPT = 128 * 1024 - 1
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
# What a process Shipyard starts on a host (a supervisor, a program, an install, a step) gets of
# the environment it is started from: these, and nothing else. The rest (the controller's own
# environment on a local host, secrets included) never reaches it; its config's `env` is added.
MINIMUM_ENV = ("PATH", "HOME", "LANG")
# sh words that run the command after them with only MINIMUM_ENV (LANG C.UTF-8 if unset).
CLEAN_ENV = 'env -i PATH="${PATH:-/usr/bin:/bin}" HOME="${HOME:-/}" LANG="${LANG:-C.UTF-8}"'


class UnsafeValue(ShipyardError, ValueError):
    """A value can't be written safely into the command, script or file being built."""


@dataclass(frozen=True)
class Script:
    """A POSIX sh script as a value: the one type builders return and executors run.

    An executor sends `text` on the standard input of `stdin_argv` (`sh -s`), never inside argv;
    `argv` (`/bin/sh -c TEXT`) runs it as one command instead. Values reach it quoted exactly
    once by the builder, or as positional parameters (`args` become `$1`, `$2`, ...), never by
    pasting them into `text` unquoted. `name` is how a person sees it (errors, logs, tables) and
    how a fake executor recognises it.
    """

    text: str
    args: tuple[str, ...] = ()
    name: str = "script"

    @property
    def argv(self) -> Argv:
        """`sh -c TEXT` (and `sh ARGS...` after it when there are args), run without stdin."""
        if len(self.text.encode()) > MAX_ARGV_SCRIPT:
            raise UnsafeValue("script too long for one argv element: send it on stdin instead")
        return (SHELL, "-c", self.text, *(("sh", *self.args) if self.args else ()))

    @property
    def stdin_argv(self) -> Argv:
        """The command that reads `text` on its standard input, its args after `--`."""
        return (SHELL, "-s", *(("--", *self.args) if self.args else ()))

    def named(self, name: str) -> Script:
        """The same script under another name (the host step it is)."""
        return replace(self, name=name)

    def __str__(self) -> str:
        first = next((line.strip() for line in self.text.splitlines() if line.strip()), "")
        shown = f"{self.name}: {first}" if first else self.name
        return f"sh -s <<{shown}>>" + ("" if not self.args else " " + shlex.join(self.args))


def check_text(value: str, what: str) -> str:
    """Return `value`, refusing a NUL byte: no argv, file name or environment can hold one."""
    if "\0" in value:
        raise UnsafeValue(f"{what} contains a NUL byte: {value!r}")
    return value


def check_name(value: str, what: str) -> str:
    """Return `value` if it is a plain name (service, revision, program): no slash or space."""
    if not SAFE_NAME.match(value) or value in {".", ".."}:
        raise UnsafeValue(f"{what} must match {SAFE_NAME.pattern}, not {value!r}")
    return value


def check_path(value: str, what: str) -> str:
    """Return `value` if it is an absolute path without NUL or newline."""
    check_text(value, what)
    if not value.startswith("/"):
        raise UnsafeValue(f"{what} must be an absolute path, not {value!r}")
    if "\n" in value or "\r" in value:
        raise UnsafeValue(f"{what} must not contain a line break: {value!r}")
    return value


def check_env(env: Mapping[str, str]) -> dict[str, str]:
    """Return `env` as a dict if every name is a portable variable name and no value holds NUL."""
    for name, value in env.items():
        if not ENV_NAME.match(name):
            raise UnsafeValue(f"environment variable name must match {ENV_NAME.pattern}: {name!r}")
        check_text(value, f"environment variable {name}")
    return dict(env)


def check_argv(argv: Sequence[str], what: str = "command") -> Argv:
    """Return `argv` as a tuple if it names a program and no element holds NUL."""
    if not argv or not argv[0]:
        raise UnsafeValue(f"{what} is empty")
    if argv[0].startswith("-"):
        raise UnsafeValue(f"{what} must start with a program, not an option: {argv[0]!r}")
    return tuple(check_text(arg, what) for arg in argv)


def resolve_program(argv: Sequence[str], directory: str) -> Argv:
    """`argv` with a relative program path (one with a slash, `venv/bin/gunicorn`) made absolute
    under `directory`, the release it belongs to. A bare name (looked up on PATH) or an absolute
    path is kept: supervisord and systemd resolve neither against the working directory."""
    checked = check_argv(argv)
    program = checked[0]
    if "/" not in program or program.startswith("/"):
        return checked
    base = check_path(directory, "directory").rstrip("/")
    return (f"{base}/{program.removeprefix('./')}", *checked[1:])


def quote(value: str) -> str:
    """Quote one value for sh (`shlex.quote`), refusing NUL."""
    return shlex.quote(check_text(value, "shell word"))


def join(argv: Sequence[str]) -> str:
    """One sh command line running `argv` as it is."""
    return " ".join(quote(arg) for arg in check_argv(argv))


def exports(env: Mapping[str, str]) -> list[str]:
    """sh lines exporting `env`, in a stable order."""
    return [f"export {name}={quote(value)}" for name, value in sorted(check_env(env).items())]


def script(lines: Iterable[str]) -> Script:
    """A script of `lines` that stops at the first failure and on unset variables."""
    return Script("\n".join(["set -eu", *lines]) + "\n")


def chain(*scripts: Script) -> Script:
    """One script running `scripts` in turn, each in a subshell, stopping at the first failure.

    Several steps for one host in one round trip.
    """
    parts = ["set -e"]
    for part in scripts:
        parts += ["(", part.text.rstrip("\n"), ")"]
    return Script("\n".join(parts) + "\n")


def command_script(
    argv: Sequence[str], *, cwd: str | None = None, env: Mapping[str, str] | None = None
) -> Script:
    """A script that runs `argv` in `cwd` with `env` added, in place of the shell (status kept)."""
    lines = [] if cwd is None else [f"cd -- {quote(check_path(cwd, 'directory'))}"]
    return script([*lines, *exports(env or {}), f"exec {join(argv)}"])


def private_dir_script(path: str) -> Script:
    """Creates directory `path` (and its parents) and takes group write and every right of
    others off it and everything in it (links are not followed): a host's logs stay private."""
    target = quote(check_path(path, "directory"))
    return script([f"mkdir -p -- {target}", f"chmod -R g-w,o-rwx -- {target}"])


def write_file_script(path: str, content: str, *, mode: str | None = None) -> Script:
    """A script replacing the file at `path` with `content` atomically (temporary file, rename)."""
    check_path(path, "file path")
    check_text(content, "file content")
    if mode is not None and not re.fullmatch(r"[0-7]{3,4}", mode):
        raise UnsafeValue(f"file mode must be octal like 0644, not {mode!r}")
    target = quote(path)
    lines = [
        f"target={target}",
        'tmp="$target.tmp-$$"',
        'mkdir -p -- "$(dirname -- "$target")"',
        f"printf '%s' {quote(content)} > \"$tmp\"",
    ]
    if mode is not None:
        lines.append(f'chmod {mode} "$tmp"')
    lines.append('mv -f -- "$tmp" "$target"')
    return script(lines)
