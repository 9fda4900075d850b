"""Prepare hosts once: the deploy root, a supervisor the user can reach, the user's rights.

supervisord hosts get their own supervisord (config under `<root>/supervisor`, started unless
it runs); systemd hosts are checked for systemctl and a unit directory the user may write.
The scripts are commands.bootstrap's; this module runs them in order and reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from shipyard.commands import nginx, supervisor
from shipyard.commands.bootstrap import (
    USER_ARGV,
    managed_nginx_paths,
    nginx_dirs_argv,
    parse_check,
    start_nginx_script,
    start_supervisord_script,
    supervisord_check_script,
    systemd_check_script,
)
from shipyard.commands.control import Systemd, control_for
from shipyard.commands.script import Script
from shipyard.config.topology import HostRef
from shipyard.deploy.hostops import run_script
from shipyard.errors import ExecutionError
from shipyard.executors.base import Executor


@dataclass
class HostReport:
    """What bootstrap found on a host and what it did."""

    host: str
    found: list[str] = field(default_factory=list)
    did: list[str] = field(default_factory=list)
    error: str = ""


async def _run(executor: Executor, built: Script) -> str:
    """Run a bootstrap script as one host step (named by its builder); its stdout."""
    return (await run_script(executor, built, built.name)).stdout


async def _bootstrap_nginx(executor: Executor, ref: HostRef, root: str, report: HostReport) -> None:
    settings = ref.host.nginx
    if not settings.managed:
        checked = await executor.run(settings.test, check=False)
        if checked.ok:
            report.found.append("found nginx (config checks)")
        else:
            report.error = f"nginx check `{' '.join(settings.test)}` failed: {checked.first_line()}"
        return
    paths = managed_nginx_paths(root)
    user = (await executor.run(USER_ARGV)).stdout.strip()
    await executor.run(nginx_dirs_argv(paths))
    conf = nginx.render_main_conf(paths, user=user if user == "root" else None)
    await executor.put(conf.encode(), paths.conf)
    line = (await _run(executor, start_nginx_script(paths))).strip()
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
            checked = parse_check(await _run(executor, systemd_check_script(root, control)))
        else:
            checked = parse_check(
                await _run(executor, supervisord_check_script(root, control.paths))
            )
        report.found += checked.found
        report.did += checked.made
        if checked.supervisord_down and not isinstance(control, Systemd):
            paths = control.paths
            await executor.put(supervisor.render_supervisord_conf(paths).encode(), paths.conf)
            report.did.append(f"wrote {paths.conf}")
            report.did.append((await _run(executor, start_supervisord_script(paths))).strip())
        if needs_nginx:
            await _bootstrap_nginx(executor, ref, root, report)
    except ExecutionError as failure:
        report.error = failure.reason
    return report
