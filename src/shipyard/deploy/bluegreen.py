"""Blue/green on one host: start the idle slot, check it, switch nginx, drain and stop the old one.

Work in flight finishes on the slot it started on (nginx's graceful reload keeps old workers
until their requests end); new work goes to the new slot; the old slot is stopped once it has no
established connections or its drain timeout has passed. It stays on disk for a switch back.
A switch that finds its idle slot still draining from an earlier switch waits for that drain.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shipyard.commands import nginx, release, slots, supervisor
from shipyard.commands.release import Color, other_color
from shipyard.config.models import HealthCheck, NginxSettings
from shipyard.deploy.control import Supervisord
from shipyard.deploy.hostgroup import upload_release
from shipyard.deploy.hostops import log_tail, run_script, wait_healthy
from shipyard.deploy.instance import Release
from shipyard.errors import DeployError, ExecutionError
from shipyard.executors.base import Executor

DRAIN_POLL_SECONDS = 0.2
DRAIN_GRACE_SECONDS = 10.0  # past a drain's deadline, before another switch takes it over
Drain = Callable[[], Awaitable[None]]


def slot_ports(config: dict[str, Any]) -> dict[Color, int]:
    ports = config.get("ports") or {}
    if "http" not in ports:
        raise DeployError("a blue-green service needs ports.http (the port nginx serves)")
    http = int(ports["http"])
    return {"blue": int(ports.get("blue", http + 1)), "green": int(ports.get("green", http + 2))}


def nginx_settings(target: Release) -> NginxSettings:
    settings = target.ref.host.nginx
    if settings.managed:
        return nginx.NginxPaths(f"{target.root.rstrip('/')}/nginx").settings()
    return settings


@dataclass(frozen=True)
class Switch:
    """What a blue/green deployment did: the slot now live, and the one left to drain."""

    live: Color
    old: Color | None
    drain: Drain


class BlueGreen:
    """The blue/green steps of one instance on its host."""

    def __init__(self, executor: Executor, target: Release) -> None:
        self.executor = executor
        self.target = target
        self.layout = target.layout
        self.config = target.config
        self.strategy = target.strategy
        self.ports = slot_ports(self.config)
        control = target.control
        if not isinstance(control, Supervisord):
            raise DeployError(
                f"blue-green needs supervisord on {target.ref.name} (its supervisor is systemd)"
            )
        self.supervisor = control.paths

    def program(self, color: Color) -> str:
        return supervisor.program_name(self.target.instance.service, color)

    async def state(self) -> slots.SlotState:
        result = await run_script(self.executor, slots.read_state_script(self.layout), "slots")
        return slots.parse_state(result.stdout)

    async def deploy(self, *, upload: bool) -> Switch:
        """Bring the instance's revision live in the idle slot; returns how to drain the old."""
        revision = self.target.instance.revision
        state = await self.state()
        live = state.live
        idle: Color = other_color(live) if live else "blue"
        if state.draining == idle:
            await self._await_drain(idle, state.drain_until)  # the seed's "pending" switch
        if upload:
            await upload_release(self.executor, self.target)
        else:
            intact = await self.executor.run(
                release.is_intact_argv(self.layout, revision), check=False
            )
            if not intact.ok:
                raise DeployError(f"release {revision[:12]} is not kept on {self.target.ref.name}")
        await run_script(
            self.executor, release.switch_slot_script(self.layout, idle, revision), "slot link"
        )
        try:
            await self._start(idle)
            await self._check(idle)
            await self._route(idle)
        except (DeployError, ExecutionError):
            await self._stop(idle)
            raise
        until = time.time() + self.strategy.drain_timeout
        await run_script(
            self.executor, slots.set_live_script(self.layout, idle, live, until), "live slot"
        )
        old = live

        async def drain() -> None:
            if old is not None:
                await self._drain(old, until)

        return Switch(idle, old, drain)

    async def _start(self, color: Color) -> None:
        env = {k: str(v) for k, v in self.config.get("env", {}).items()}
        env |= {"PORT": str(self.ports[color]), "SHIPYARD_SLOT": color}
        argv = list(self.config["commands"]["start"])
        name = self.program(color)
        directory = self.layout.slot(color)
        logs = self.layout.logs
        files = supervisor.program_files(
            self.supervisor, name, argv=argv, directory=directory, env=env, logs_dir=logs
        )
        for path, text in files.items():
            mode = 0o700 if path.endswith(".sh") else 0o600
            await self.executor.put(text.encode(), path, mode=mode)
        await run_script(
            self.executor,
            supervisor.apply_programs_script(self.supervisor, [(name, None)]),
            f"start {color}",
        )

    async def _check(self, color: Color) -> None:
        check = self.target.health
        if check is None:
            return
        timeout = self.strategy.deploy_timeout
        attempts = max(1, math.ceil(timeout / max(check.interval, 0.1)))
        bounded = check.model_copy(update={"retries": min(check.retries, attempts - 1)})
        health = await wait_healthy(
            self.executor,
            HealthCheck.model_validate(bounded),
            port=self.ports[color],
            deadline=time.monotonic() + timeout,  # each attempt takes time too
        )
        if not health.healthy:
            tail = await log_tail(
                self.executor, f"{self.layout.logs}/{self.program(color)}.err.log"
            )
            raise DeployError(
                f"{color} slot failed its health check: {health.detail}"
                + (f"\n{tail}" if tail else "")
            )

    async def _route(self, color: Color) -> None:
        settings = nginx_settings(self.target)
        site = nginx.render_site(
            self.target.instance.service,
            listen=self.strategy.front or str(self.config["ports"]["http"]),
            port=self.ports[color],
            address=self.strategy.upstream_host,
        )
        path = nginx.site_path(settings.conf_dir, self.target.instance.service)
        await run_script(
            self.executor,
            nginx.apply_site_script(path, site, test=settings.test, reload=settings.reload),
            "nginx switch",
        )

    async def _stop(self, color: Color) -> None:
        await self.executor.run(
            supervisor.stop_argv(self.supervisor.conf, self.program(color)), check=False
        )

    async def _await_drain(self, color: Color, until: float) -> None:
        """Wait for the switch that left `color` draining to stop it. Draining it here too would
        race that switch's own stop, which could then land on the slot this switch has just
        started; so only once that switch looks gone (its deadline long past) is it done here."""
        while time.time() < until + DRAIN_GRACE_SECONDS:
            if (await self.state()).draining != color:
                return
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        await self._drain(color, until)

    async def _drain(self, color: Color, until: float) -> None:
        """Wait until `color`'s port has no connections (or `until`), then stop it."""
        argv = nginx.established_argv(self.ports[color], address=self.strategy.upstream_host)
        while time.time() < until:
            found = await self.executor.run(argv, check=False)
            if found.ok and nginx.count_established(found.stdout) == 0:
                break
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        await self._stop(color)
        await run_script(self.executor, slots.drained_script(self.layout, color), "drained")
