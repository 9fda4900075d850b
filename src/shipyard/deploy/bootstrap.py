"""Prepare hosts once: the deploy root, a supervisor the user can reach, the user's rights.

supervisord hosts get their own supervisord (config under `<root>/supervisor`, started unless
it runs); systemd hosts are checked for systemctl and a unit directory the user may write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipyard.commands import nginx, supervisor
from shipyard.commands.script import CLEAN_ENV, Script, join, quote, script
from shipyard.config.topology import HostRef
from shipyard.deploy.control import Systemd, control_for
from shipyard.deploy.hostops import run_script
from shipyard.errors import ExecutionError
from shipyard.executors.base import Executor

START_WAIT_SECONDS = 10


@dataclass
class HostReport:
    """What bootstrap found on a host and what it did."""

    host: str
    found: list[str] = field(default_factory=list)
    did: list[str] = field(default_factory=list)
    error: str = ""


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


def _systemd_check_script(root: str, control: Systemd) -> Script:
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
    )


def _check_script(root: str, paths: supervisor.SupervisorPaths) -> Script:
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
            "then echo 'found supervisord running'; else echo 'supervisord down'; fi",
        ]
    )


def _start_script(paths: supervisor.SupervisorPaths) -> Script:
    """Starts supervisord with a clean environment (MINIMUM_ENV): its programs inherit it, and
    they must get nothing but that and their own config's `env`, whoever runs bootstrap."""
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
    )


def _nginx_script(paths: nginx.NginxPaths) -> Script:
    """Start the host's own nginx unless it runs; wait until its pid file names a live process."""
    start = " ".join(quote(a) for a in nginx.start_argv(paths.conf, error_log=paths.error_log))
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
    )


async def _bootstrap_nginx(executor: Executor, ref: HostRef, root: str, report: HostReport) -> None:
    settings = ref.host.nginx
    if not settings.managed:
        checked = await executor.run(settings.test, check=False)
        if checked.ok:
            report.found.append("found nginx (config checks)")
        else:
            report.error = f"nginx check `{' '.join(settings.test)}` failed: {checked.first_line()}"
        return
    paths = nginx.NginxPaths(f"{root.rstrip('/')}/nginx")
    user = (await executor.run(("id", "-un"))).stdout.strip()
    temp = [paths.temp(t) for t in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    await executor.run(("mkdir", "-p", "--", paths.conf_dir, *temp))
    conf = nginx.render_main_conf(paths, user=user if user == "root" else None)
    await executor.put(conf.encode(), paths.conf)
    started = await run_script(executor, _nginx_script(paths), "start nginx")
    line = started.stdout.strip()
    (report.found if line.startswith("found") else report.did).append(line)


async def bootstrap_host(
    executor: Executor, ref: HostRef, project_dir: Path, *, needs_nginx: bool = False
) -> HostReport:
    """Check the host and set up what is missing; never raises for a host's own trouble."""
    report = HostReport(ref.name)
    root = ref.root(project_dir)
    control = control_for(ref, root)
    try:
        if isinstance(control, Systemd):
            checked = await run_script(executor, _systemd_check_script(root, control), "check")
            report.found += [
                line for line in checked.stdout.splitlines() if line.startswith("found")
            ]
            report.did += [line for line in checked.stdout.splitlines() if line.startswith("made")]
            if needs_nginx:
                await _bootstrap_nginx(executor, ref, root, report)
            return report
        paths = control.paths
        checked = await run_script(executor, _check_script(root, paths), "check host")
        lines = checked.stdout.split()
        text = checked.stdout.strip().splitlines()
        report.found += [line for line in text if line.startswith("found")]
        report.did += [line for line in text if line.startswith("made")]
        if "down" in lines:
            await executor.put(supervisor.render_supervisord_conf(paths).encode(), paths.conf)
            report.did.append(f"wrote {paths.conf}")
            started = await run_script(executor, _start_script(paths), "start supervisord")
            report.did.append(started.stdout.strip())
        if needs_nginx:
            await _bootstrap_nginx(executor, ref, root, report)
    except ExecutionError as failure:
        report.error = failure.reason
    return report
