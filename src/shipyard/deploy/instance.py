"""The deployment of one instance on its host (the `restart` strategy), and its rollback.

Upload the release unless it is there intact, install, switch `current` atomically, restart
under the supervisor, check health. On any failure `current` goes back to the release it pointed
at before, which is restarted, so the host always runs a complete release.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from shipyard.commands import inventory, release, supervisor
from shipyard.commands.record import HostRecord, write_record_script
from shipyard.config.flatten import Instance
from shipyard.config.models import HealthCheck, Strategy
from shipyard.config.topology import HostRef
from shipyard.deploy.hostops import (
    apply_program_script,
    log_tail,
    run_script,
    supervisor_paths,
    wait_healthy,
)
from shipyard.deploy.staging import stage_release
from shipyard.errors import DeployError, ExecutionError
from shipyard.executors.base import Executor


@dataclass(frozen=True)
class Release:
    """One instance's release as the host will get it: real values, secrets revealed."""

    instance: Instance
    config: dict[str, Any]  # realised: never print or store it
    ref: HostRef
    project_dir: Path

    @property
    def root(self) -> str:
        return str(self.config["host"]["root"])

    @property
    def layout(self) -> release.ReleaseLayout:
        return release.ReleaseLayout(self.root, self.instance.service)

    @property
    def health(self) -> HealthCheck | None:
        found = self.config.get("health")
        return HealthCheck.model_validate(found) if found else None

    @property
    def strategy(self) -> Strategy:
        return Strategy.model_validate(self.config.get("strategy", {}))


async def upload_release(executor: Executor, target: Release) -> bool:
    """Put the release on the host unless it is there intact; returns True when it uploaded."""
    layout, revision = target.layout, target.instance.revision
    prepared = await run_script(executor, release.prepare_script(layout, revision), "prepare")
    if release.parse_prepare(prepared.stdout):
        return False
    sealed = {path[1] for path in target.instance.sealed if path[0] == "files"}
    staging = Path(tempfile.mkdtemp(prefix="shipyard-release-"))
    try:
        staged = stage_release(target.project_dir, target.config, sealed, staging / "release")
        for relative, (text, mode) in render_program(target).items():
            (staged / relative).parent.mkdir(parents=True, exist_ok=True)
            (staged / relative).write_text(text, encoding="utf-8")
            (staged / relative).chmod(mode)
        await executor.put_dir(staging / "release", layout.release(revision))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    install = target.config.get("commands", {}).get("install")
    if install:
        env = {k: str(v) for k, v in target.config.get("env", {}).items()}
        await run_script(
            executor, release.install_script(layout, revision, install, env), "install"
        )
    await run_script(executor, release.mark_complete_script(layout, revision), "mark complete")
    return True


PROGRAM_FILE = ".shipyard/supervisor.conf"
LAUNCHER_FILE = ".shipyard/launch.sh"


def render_program(target: Release) -> dict[str, tuple[str, int]]:
    """The release's own supervisord program file (and launcher): path -> (text, mode).

    It holds the environment, secrets included, so it is readable by its owner only. The
    process also learns its revision and instance (SHIPYARD_REVISION, SHIPYARD_INSTANCE), which
    makes every release's program file differ, so supervisord's `update` restarts it.
    """
    layout = target.layout
    name = supervisor.program_name(target.instance.service)
    argv = list(target.config["commands"]["start"])
    env = {k: str(v) for k, v in target.config.get("env", {}).items()}
    env |= {
        "SHIPYARD_REVISION": target.instance.revision,
        "SHIPYARD_INSTANCE": target.instance.name,
    }
    files: dict[str, tuple[str, int]] = {}
    if supervisor.needs_launcher(argv, env):
        launcher = f"{layout.release(target.instance.revision)}/{LAUNCHER_FILE}"
        files[LAUNCHER_FILE] = (supervisor.render_launcher(argv, env, layout.current), 0o700)
        argv, env = list(supervisor.launcher_argv(launcher)), {}
    program = supervisor.render_program(
        name,
        argv=argv,
        directory=layout.current,
        env=env,
        stdout_log=f"{layout.logs}/stdout.log",
        stderr_log=f"{layout.logs}/stderr.log",
    )
    files[PROGRAM_FILE] = (program, 0o600)
    return files


def program_name(target: Release) -> str:
    return supervisor.program_name(target.instance.service)


async def restart(executor: Executor, target: Release) -> None:
    """(Re)start the service from the program file of the release `current` points at."""
    paths = supervisor_paths(target.ref, target.root)
    live_program = f"{target.layout.current}/{PROGRAM_FILE}"
    await run_script(
        executor, apply_program_script(paths, program_name(target), live_program), "restart"
    )


async def switch_to(
    executor: Executor, target: Release, revision: str, *, restoring: bool = False
) -> str | None:
    """Point `current` at `revision`; returns the revision it pointed at before.

    A forward switch makes the old release `previous`; `restoring` (after a failure) does not.
    """
    build = release.restore_current_script if restoring else release.switch_current_script
    result = await run_script(executor, build(target.layout, revision), "switch")
    return release.parse_switch(result.stdout)


async def check_health(executor: Executor, target: Release) -> None:
    health = await wait_healthy(executor, target.health)
    if not health.healthy:
        tail = await log_tail(executor, f"{target.layout.logs}/stderr.log")
        raise DeployError(f"health check failed: {health.detail}" + (f"\n{tail}" if tail else ""))


async def finish_on_host(
    executor: Executor,
    target: Release,
    *,
    deployment_id: str,
    at: datetime,
    slot: str | None = None,
) -> None:
    """Write the host-side record and prune old releases (never current or previous)."""
    layout = target.layout
    record = HostRecord(
        service=target.instance.service,
        instance=target.instance.name,
        revision=target.instance.revision,
        deployment_id=deployment_id,
        deployed_at=at,
        slot=slot,
    )
    await run_script(executor, write_record_script(layout, record), "record")
    listing = await run_script(executor, inventory.list_script(layout), "list releases")
    links = await run_script(executor, inventory.links_script(layout), "read links")
    doomed = inventory.plan_prune(
        inventory.parse_listing(listing.stdout),
        keep=target.strategy.keep_releases,
        links=inventory.parse_links(links.stdout),
        also_keep=[target.instance.revision],
    )
    if doomed:
        await run_script(executor, inventory.prune_script(layout, doomed), "prune")


async def _switch_back(
    executor: Executor,
    target: Release,
    previous: str | None,
    failure: BaseException,
) -> None:
    """Put the release that ran before back in place; a failure here is added to the reason.

    With no release before (a first deployment), the failed program is stopped instead.
    """
    try:
        if previous is None:
            conf = supervisor_paths(target.ref, target.root).conf
            await executor.run(supervisor.stop_argv(conf, program_name(target)), check=False)
            return
        await switch_to(executor, target, previous, restoring=True)
        await restart(executor, target)
    except (DeployError, ExecutionError) as also:
        failure.add_note(f"switching back to {previous} failed too: {also}")


async def rollback_release(
    executor: Executor, target: Release, *, deployment_id: str, at: datetime
) -> None:
    """Make `target` (a kept release: its snapshot) live again. Nothing is uploaded."""
    revision = target.instance.revision
    intact = await executor.run(release.is_intact_argv(target.layout, revision), check=False)
    if not intact.ok:
        raise DeployError(f"release {revision[:12]} is not kept on {target.ref.name}")
    previous = await switch_to(executor, target, revision)
    try:
        await restart(executor, target)
        await check_health(executor, target)
    except (DeployError, ExecutionError) as failure:
        await _switch_back(executor, target, previous, failure)
        raise
    await finish_on_host(executor, target, deployment_id=deployment_id, at=at)
