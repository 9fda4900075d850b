"""What preparing a host runs there: the checks and start scripts of `shipyard bootstrap`.

A check script creates the deploy root if it is missing and prints one line per fact: `found
...` for what was there, `made ...` for what it created, `supervisord down` when supervisord
needs starting; it fails (exit 1, the reason on stderr) on what only the host's owner can mend.
`parse_check` reads those lines back. deploy/bootstrap.py runs these in order.
"""

from __future__ import annotations

from dataclasses import dataclass

from shipyard.commands import nginx, supervisor
from shipyard.commands.control import Systemd
from shipyard.commands.script import CLEAN_ENV, Argv, Script, join, quote, script

START_WAIT_SECONDS = 10
SUPERVISORD_DOWN = "supervisord down"
USER_ARGV: Argv = ("id", "-un")

# Every host step runs under coreutils `timeout` (commands.batch).
_TIMEOUT_CHECK = [
    "command -v timeout >/dev/null ||",
    "  { echo 'timeout (coreutils) not installed' >&2; exit 1; }",
]
_ROOT_CHECK = [
    'if [ -d "$root" ]; then echo "found root";',
    'else mkdir -p -- "$root" && echo "made root"; fi',
    'probe="$root/.shipyard-write-test.$$"',
    'if : > "$probe" 2>/dev/null; then rm -f -- "$probe"; echo "found writable root";',
    'else echo "root not writable by $(id -un)" >&2; exit 1; fi',
]


@dataclass(frozen=True)
class CheckResult:
    """What a check script printed, sorted: facts found, things made, supervisord to start."""

    found: tuple[str, ...] = ()
    made: tuple[str, ...] = ()
    supervisord_down: bool = False


def parse_check(stdout: str) -> CheckResult:
    """The `found ...` and `made ...` lines of a check script's output, and whether it said
    `supervisord down`; any other line is ignored."""
    lines = [line.strip() for line in stdout.splitlines()]
    return CheckResult(
        found=tuple(line for line in lines if line.startswith("found")),
        made=tuple(line for line in lines if line.startswith("made")),
        supervisord_down=SUPERVISORD_DOWN in lines,
    )


def systemd_check_script(root: str, control: Systemd) -> Script:
    """Checks a systemd host: the root is writable, timeout and systemctl exist, and the unit
    directory exists and is writable by the user."""
    units = quote(control.unit_dir)
    return script(
        [
            f"root={quote(root)}",
            *_ROOT_CHECK,
            *_TIMEOUT_CHECK,
            "command -v systemctl >/dev/null ||",
            "  { echo 'systemctl not installed' >&2; exit 1; }",
            f"mkdir -p -- {units}",
            f'if [ -w {units} ]; then echo "found writable {control.unit_dir}";',
            f'else echo "{control.unit_dir} not writable by $(id -un)" >&2; exit 1; fi',
            "systemctl --version | head -n 1 | sed 's/^/found /'",
        ]
    ).named("check")


def supervisord_check_script(root: str, paths: supervisor.SupervisorPaths) -> Script:
    """Checks a supervisord host: the root is writable, timeout and supervisord exist, the
    programs directory exists; says whether this host's supervisord runs."""
    conf = quote(paths.conf)
    return script(
        [
            f"root={quote(root)}",
            *_ROOT_CHECK,
            *_TIMEOUT_CHECK,
            f"mkdir -p -- {quote(paths.programs)}",
            "command -v supervisord >/dev/null ||",
            "  { echo 'supervisord not installed' >&2; exit 1; }",
            f"if supervisorctl -c {conf} pid >/dev/null 2>&1;",
            f"then echo 'found supervisord running'; else echo '{SUPERVISORD_DOWN}'; fi",
        ]
    ).named("check host")


def start_supervisord_script(paths: supervisor.SupervisorPaths) -> Script:
    """Starts supervisord with a clean environment (MINIMUM_ENV) and waits until it answers:
    its programs inherit that environment, and they must get nothing but it and their own
    config's `env`, whoever runs bootstrap."""
    conf = quote(paths.conf)
    return script(
        [
            # Its `umask` setting only applies when it daemonizes: set it here too.
            f"umask {supervisor.LOG_UMASK}",
            f"{CLEAN_ENV} {join(supervisor.supervisord_argv(paths.conf))}",
            "i=0",
            f"while ! supervisorctl -c {conf} pid >/dev/null 2>&1; do",
            "  i=$((i+1))",
            f"  if [ $i -gt {START_WAIT_SECONDS * 10} ]; then",
            "    echo 'supervisord did not start' >&2; exit 1",
            "  fi",
            "  sleep 0.1",
            "done",
            "echo 'started supervisord'",
        ]
    ).named("start supervisord")


def managed_nginx_paths(root: str) -> nginx.NginxPaths:
    """Where a host's own nginx (`nginx: {managed: true}`) lives: under `<root>/nginx`."""
    return nginx.NginxPaths(f"{root.rstrip('/')}/nginx")


def nginx_dirs_argv(paths: nginx.NginxPaths) -> Argv:
    """Creates a managed nginx's config directory and its temporary directories."""
    return ("mkdir", "-p", "--", paths.conf_dir, *(paths.temp(t) for t in nginx.TEMP_KINDS))


def start_nginx_script(paths: nginx.NginxPaths) -> Script:
    """Starts the host's own nginx unless it runs; waits until its pid file names a live process.

    Prints `found nginx running` or `started nginx`.
    """
    start = join(nginx.start_argv(paths.conf, error_log=paths.error_log))
    pidfile = quote(paths.pidfile)
    alive = f'[ -s {pidfile} ] && kill -0 "$(cat {pidfile})" 2>/dev/null'
    return script(
        [
            f"if {alive}; then echo 'found nginx running'; exit 0; fi",
            f"rm -f -- {pidfile}",
            start,
            "i=0",
            f"until {alive}; do",
            "  i=$((i+1))",
            f"  if [ $i -gt {START_WAIT_SECONDS * 10} ]; then",
            "    echo 'nginx did not start' >&2; exit 1",
            "  fi",
            "  sleep 0.1",
            "done",
            "echo 'started nginx'",
        ]
    ).named("start nginx")
