"""One instance's release as its host gets it: the realised config, where it lives, the program
definition it carries for the host's supervisor, and the host-side record written after it.

The deployment itself is HostGroup's (the `restart` strategy, and rollbacks) or BlueGreen's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from shipyard.commands import inventory, release
from shipyard.commands.control import HEALTH_FILE, Control, Program, ReleaseFiles, control_for
from shipyard.commands.record import HostRecord, write_record_script
from shipyard.config.flatten import Instance
from shipyard.config.models import HealthCheck, Strategy
from shipyard.config.topology import HostRef
from shipyard.deploy.hostops import run_script
from shipyard.executors.base import Executor

# Under the service's directory on the host: one file per host step running now.
STEPS_DIR = ".shipyard-steps"


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
    def guard(self) -> str:
        """Where the host steps of this instance register while they run (commands.batch)."""
        return f"{self.layout.service_dir}/{STEPS_DIR}"

    @property
    def health(self) -> HealthCheck | None:
        found = self.config.get("health")
        return HealthCheck.model_validate(found) if found else None

    @property
    def probe_env(self) -> dict[str, str]:
        """What a health check attempt gets added to the clean environment: $PORT, the
        service's http port, when it has one (a blue/green slot's attempt gets the slot's)."""
        ports = self.config.get("ports") or {}
        return {"PORT": str(ports["http"])} if "http" in ports else {}

    @cached_property  # asked for at every step of every instance; made once
    def control(self) -> Control:
        """The host's process supervisor, as its `supervisor:` says."""
        return control_for(self.ref, self.root)

    @property
    def program(self) -> str:
        """The name the supervisor knows the service by."""
        return self.control.name(self.instance.service)

    @property
    def strategy(self) -> Strategy:
        return self.instance.strategy


def render_program(target: Release) -> ReleaseFiles:
    """The release's own program definition for the host's supervisor, and its health check:
    path -> (text, mode).

    It holds the environment, secrets included, so it is readable by its owner only. The
    process also learns its revision and instance (SHIPYARD_REVISION, SHIPYARD_INSTANCE), which
    makes every release's program file differ, so supervisord's `update` restarts it.
    """
    layout, instance = target.layout, target.instance
    env = {k: str(v) for k, v in target.config.get("env", {}).items()}
    env |= {"SHIPYARD_REVISION": instance.revision, "SHIPYARD_INSTANCE": instance.name}
    program = Program(
        service=instance.service,
        instance=instance.name,
        argv=tuple(target.config["commands"]["start"]),
        env=env,
        directory=layout.current,
        release_dir=layout.release(instance.revision),
        logs_dir=layout.logs,
    )
    files = target.control.render(program)
    files[HEALTH_FILE] = (json.dumps(target.config.get("health"), sort_keys=True), 0o600)
    return files


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
