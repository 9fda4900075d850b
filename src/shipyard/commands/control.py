"""The host's process supervisor as deployments drive it: supervisord or systemd, per host.

Pure builders (moved here from deploy/control.py): what a release carries, and the scripts and
argv that apply, query and stop its programs; the deploy layer runs them.

Both answer the same questions in the same words (RUNNING, STARTING, FATAL, ...): how a
release carries its program's definition, how a set of programs is (re)started from the live
releases in one script, what state each is in, how they are stopped. `settle` is how long a
program must have run before the supervisor calls it running: supervisord's `startsecs`.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from shipyard.commands import supervisor, systemd
from shipyard.commands.script import Argv, Script, command_script, resolve_program
from shipyard.config.topology import HostRef

# What a release holds besides the service's files: its program's definition, 0600 (it holds
# the environment, secrets included).
PROGRAM_FILE = ".shipyard/supervisor.conf"
LAUNCHER_FILE = ".shipyard/launch.sh"
UNIT_FILE = ".shipyard/unit.service"
# The release's own health check (JSON, `null` for none): a switch back checks the release it
# restores as that release's config had it. 0600: a check may hold a secret.
HEALTH_FILE = ".shipyard/health.json"
ReleaseFiles = dict[str, tuple[str, int]]  # path in the release -> (text, mode)


@dataclass(frozen=True)
class Program:
    """What runs: the command, its environment, where; and the paths it needs."""

    service: str
    instance: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    directory: str  # the service's `current`
    release_dir: str  # the release the files are rendered for
    logs_dir: str


@dataclass(frozen=True)
class Supervisord:
    """The host's supervisord (its main config at `paths.conf`)."""

    paths: supervisor.SupervisorPaths
    settle: ClassVar[float] = 1.0  # the programs' startsecs
    release_file: ClassVar[str] = PROGRAM_FILE

    def name(self, service: str) -> str:
        return supervisor.program_name(service)

    def render(self, program: Program) -> ReleaseFiles:
        argv = list(resolve_program(program.argv, program.release_dir))
        env = dict(program.env)
        files: ReleaseFiles = {}
        if supervisor.needs_launcher(argv, env):
            launcher = f"{program.release_dir}/{LAUNCHER_FILE}"
            text = supervisor.render_launcher(argv, env, program.directory)
            files[LAUNCHER_FILE] = (text, 0o700)
            argv, env = list(supervisor.launcher_argv(launcher)), {}
        rendered = supervisor.render_program(
            self.name(program.service),
            argv=argv,
            directory=program.directory,
            env=env,
            stdout_log=f"{program.logs_dir}/stdout.log",
            stderr_log=f"{program.logs_dir}/stderr.log",
            start_seconds=int(self.settle),
        )
        files[PROGRAM_FILE] = (rendered, 0o600)
        return files

    def apply(self, programs: Sequence[tuple[str, str | None]]) -> Script:
        return supervisor.apply_programs_script(self.paths, programs)

    def status(self, names: Sequence[str]) -> Script:
        return command_script(supervisor.rpc_argv(self.paths.conf, "status", *names))

    def states(self, stdout: str, names: Sequence[str]) -> dict[str, str]:
        return supervisor.parse_status(stdout.splitlines())

    def reasons(self, stdout: str, names: Sequence[str]) -> dict[str, str]:
        """Why programs that are not running stopped (a spawn error, say), from `status`."""
        return supervisor.parse_status_reasons(stdout.splitlines())

    def stop(self, names: Sequence[str]) -> Argv:
        return supervisor.supervisorctl_argv(self.paths.conf, "stop", *names)

    def disable(self, names: Sequence[str]) -> Script:
        """Stopped, and not started at boot (unlinked from the include); releases stay."""
        return supervisor.remove_programs_script(self.paths, names)

    def remove(self, names: Sequence[str]) -> Script:
        """Gone from the supervisor (for a delete): the same as `disable` here."""
        return supervisor.remove_programs_script(self.paths, names)


@dataclass(frozen=True)
class Systemd:
    """The host's systemd: units installed into `unit_dir`."""

    unit_dir: str
    settle: ClassVar[float] = 0.0
    release_file: ClassVar[str] = UNIT_FILE

    def name(self, service: str) -> str:
        return systemd.unit_name(service)

    def render(self, program: Program) -> ReleaseFiles:
        unit = systemd.render_unit(
            f"Shipyard {program.instance}",
            argv=resolve_program(program.argv, program.release_dir),
            directory=program.directory,
            env=program.env,
            stdout_log=f"{program.logs_dir}/stdout.log",
            stderr_log=f"{program.logs_dir}/stderr.log",
        )
        return {UNIT_FILE: (unit, 0o600)}

    def apply(self, programs: Sequence[tuple[str, str | None]]) -> Script:
        return systemd.apply_units_script(self.unit_dir, programs)

    def status(self, names: Sequence[str]) -> Script:
        return command_script(systemd.states_argv(*names))

    def states(self, stdout: str, names: Sequence[str]) -> dict[str, str]:
        return systemd.parse_states(stdout, names)

    def reasons(self, stdout: str, names: Sequence[str]) -> dict[str, str]:
        """`systemctl is-active` says no more than the state: its logs tell the rest."""
        return {}

    def stop(self, names: Sequence[str]) -> Argv:
        return systemd.stop_units_argv(*names)

    def disable(self, names: Sequence[str]) -> Script:
        """Stopped and not started at boot; the unit file stays for `enable` (`apply`)."""
        return systemd.disable_units_script(names)

    def remove(self, names: Sequence[str]) -> Script:
        """Stopped, disabled and its unit file removed (for a delete)."""
        return systemd.remove_units_script(self.unit_dir, names)


Control = Supervisord | Systemd


def control_for(ref: HostRef, root: str) -> Control:
    """The supervisor `ref`'s host runs its services under (`supervisor:` in shipyard.yaml);
    `root` is its deploy root (`ref.root(project_dir)`)."""
    if ref.host.supervisor == "systemd":
        return Systemd(ref.host.systemd_unit_dir)
    return Supervisord(supervisor_paths(ref, root))


def supervisor_paths(ref: HostRef, root: str) -> supervisor.SupervisorPaths:
    """This host's supervisord: beside its `supervisor_config`, or under `<root>/supervisor`."""
    if ref.host.supervisor_config:
        return supervisor.SupervisorPaths(posixpath.dirname(ref.host.supervisor_config))
    return supervisor.SupervisorPaths(f"{root.rstrip('/')}/supervisor")
