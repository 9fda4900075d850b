"""Blue/green on one host: start the idle slot, check it, switch nginx, drain and stop the old one.

Work in flight finishes on the slot it started on (nginx's graceful reload keeps old workers
until their requests end); new work goes to the new slot; the old slot is stopped once it has no
established connections or its drain timeout has passed. It stays on disk for a switch back.
A switch that finds its idle slot still draining from an earlier switch waits for that drain.

Which slot is live is read from the host at every deployment: the slot nginx's site file names.
The host's `live-slot` record is written in the same step as the switch, after the reload, so a
record that disagrees shows a switch cut short (a controller killed there); the next deployment
first finishes that switch (or takes it back, if the slot it names is no longer healthy), and
never replaces a slot before nginx has stopped sending it requests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from shipyard.commands import nginx, release, slots, supervisor
from shipyard.commands.batch import PartResult, end_leftovers_script
from shipyard.commands.bootstrap import managed_nginx_paths
from shipyard.commands.control import Supervisord
from shipyard.commands.health import probe_for
from shipyard.commands.release import Color, other_color
from shipyard.config.models import HealthCheck, NginxSettings
from shipyard.deploy.hostgroup import upload_release
from shipyard.deploy.hostops import first_line, log_tail, probe_once, run_script, wait_healthy
from shipyard.deploy.instance import Release
from shipyard.errors import DeployError, ExecutionError
from shipyard.executors.base import Executor

DRAIN_POLL_SECONDS = 0.2
DRAIN_GRACE_SECONDS = 10.0  # past a drain's deadline, before another switch takes it over
WATCH_SECONDS = 1.0  # between looks at the supervisor while a slot's health check fails
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
        return managed_nginx_paths(target.root).settings()
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

    def site_path(self) -> str:
        return nginx.site_path(nginx_settings(self.target).conf_dir, self.target.instance.service)

    async def state(self) -> slots.SlotState:
        """The slots as the host has them; `live` is the slot nginx's site file names."""
        built = slots.read_state_script(self.layout, self.site_path())
        result = await run_script(self.executor, built, "slots")
        return slots.parse_state(result.stdout).resolve(self.ports)

    async def deploy(self, *, upload: bool, fence: Callable[[], None] = lambda: None) -> Switch:
        """Bring the instance's revision live in the idle slot; returns how to drain the old.
        `fence` is called before each step that changes nothing live yet (it may raise): the
        upload, the slot link and the idle slot's start; never before the nginx switch."""
        revision = self.target.instance.revision
        state = await self.state()
        live, draining = state.live, state.draining
        if live is not None and not state.agrees:
            live, draining = await self._finish_cut_switch(state), None
        idle: Color = other_color(live) if live else "blue"
        if draining == idle:
            await self._await_drain(idle, state.drain_until)  # the seed's "pending" switch
        else:
            await self._quiesce(idle)  # a switch cut short may have left it serving requests
        fence()
        if upload:
            await upload_release(self.executor, self.target)
        else:
            # A rollback uploads nothing; what an interrupted deployment left running ends first.
            await run_script(self.executor, end_leftovers_script(self.target.guard), "leftovers")
            intact = await self.executor.run(
                release.is_intact_argv(self.layout, revision), check=False
            )
            if not intact.ok:
                raise DeployError(f"release {revision[:12]} is not kept on {self.target.ref.name}")
        fence()
        await run_script(
            self.executor, release.switch_slot_script(self.layout, idle, revision), "slot link"
        )
        # Nothing live has changed yet: the idle slot's program (if one still runs) keeps the
        # directory it started in, and nginx serves the live slot. From its start on, the switch
        # runs to its end (or its failure stops the idle slot again).
        fence()
        until = 0.0
        try:
            await self._start(idle)
            await self._check(idle)
            until = time.time() + self.strategy.drain_timeout
            await self._route(idle, draining=live, until=until)
        except (DeployError, ExecutionError):
            await self._stop_unless_served(idle)
            raise
        old = live

        async def drain() -> None:
            if old is not None:
                await self._drain(old, until)

        return Switch(idle, old, drain)

    async def _finish_cut_switch(self, state: slots.SlotState) -> Color:
        """A switch was cut short: the site file names `state.live`, the record another slot
        (nginx may or may not have reloaded). Route nginx to the site file's slot if it answers
        its health check, else back to the recorded one; record it. Returns the live slot."""
        served = state.live
        assert served is not None
        choice: Color = served
        trouble = await self._probe_once(served)
        if trouble and state.recorded is not None and not await self._probe_once(state.recorded):
            choice = state.recorded
        await self._route(choice, draining=None, until=0.0)
        return choice

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

    async def _attempt(self, check: HealthCheck, color: Color, step: str) -> PartResult:
        """One health check attempt against `color`, as host step `step`: an HTTP check at the
        slot's port, a command check in the slot's directory with the slot's $PORT (and the
        clean environment of every host step)."""
        return await probe_once(
            self.executor,
            probe_for(check, port=self.ports[color]),
            step,
            cwd=self.layout.slot(color),
            env={"PORT": str(self.ports[color]), "SHIPYARD_SLOT": color},
        )

    async def _probe_once(self, color: Color, step: str = "health") -> str:
        """One health check attempt against `color`: "" when it passes, else why not."""
        check = self.target.health
        if check is None:
            return ""
        result = await self._attempt(check, color, step)
        if result.ok:
            return ""
        last = first_line(result) or f"exit status {result.exit_status}"
        return f"{color} slot: {probe_for(check, port=self.ports[color]).description}: {last}"

    async def probe_live(self) -> str:
        """One health check attempt against the slot nginx serves (a canary's soak, host step
        "soak"): "" when it passes."""
        state = await self.state()
        if state.live is None:
            return "no slot is live"
        return await self._probe_once(state.live, "soak")

    async def _process(self, color: Color) -> slots.SlotProcess:
        built = slots.slot_process_script(
            self.supervisor.conf, self.program(color), self.ports[color]
        )
        result = await run_script(self.executor, built, f"{color} program")
        return slots.parse_slot_process(
            result.stdout, self.program(color), self.strategy.upstream_host
        )

    async def _check(self, color: Color) -> None:
        """Until `color` passes its health check, within the deploy timeout; fails at once when
        the supervisor reports its program exited, and when a process that is not the slot's
        own program holds its port."""
        check = self.target.health
        if check is None:
            return
        probe = probe_for(check, port=self.ports[color])
        deadline = time.monotonic() + self.strategy.deploy_timeout
        watched = time.monotonic()  # the supervisor needs a moment to spawn it
        attempt = 0
        while True:
            attempt += 1
            result = await self._attempt(check, color, "health")
            if result.ok:
                found = await self._process(color)
                if found.foreign():
                    raise DeployError(self._held(color, found))
                return
            last = first_line(result) or f"exit status {result.exit_status}"
            out_of_time = time.monotonic() + probe.interval >= deadline
            if attempt >= probe.attempts or out_of_time:
                found = await self._process(color)
                why = f"{probe.description}: failed {attempt} time(s), last: {last}"
                if found.foreign():
                    why += f"; {self._held(color, found)}"
                raise DeployError(
                    f"{color} slot failed its health check: {why}" + await self._tail(color)
                )
            if time.monotonic() - watched >= WATCH_SECONDS:
                watched = time.monotonic()
                found = await self._process(color)
                if found.exited:
                    raise DeployError(self._exited(color, found, attempt) + await self._tail(color))
            await asyncio.sleep(probe.interval)

    def _held(self, color: Color, found: slots.SlotProcess) -> str:
        own = f"pid {found.pid}" if found.pid else "not running"
        return (
            f"port {self.ports[color]} of the {color} slot is held by "
            f"{', '.join(found.foreign())}, not by its program {self.program(color)} ({own})"
        )

    def _exited(self, color: Color, found: slots.SlotProcess, attempts: int) -> str:
        why = f": {found.description}" if found.description else ""
        text = (
            f"{color} slot failed its health check: its program {self.program(color)} is "
            f"{found.state}{why} (after {attempts} attempt(s))"
        )
        if found.foreign():
            text += f"; {self._held(color, found)}"
        return text

    async def _tail(self, color: Color) -> str:
        tail = await log_tail(self.executor, f"{self.layout.logs}/{self.program(color)}.err.log")
        return f"\n{tail}" if tail else ""

    async def _route(self, color: Color, *, draining: Color | None, until: float) -> None:
        """Switch nginx to `color` and, in the same host step once nginx has reloaded, record it
        live (and `draining` left to drain until `until`)."""
        settings = nginx_settings(self.target)
        site = nginx.render_site(
            self.target.instance.service,
            listen=self.strategy.front or str(self.config["ports"]["http"]),
            port=self.ports[color],
            address=self.strategy.upstream_host,
        )
        record = slots.set_live_lines(self.layout, color, draining, until)
        await run_script(
            self.executor,
            nginx.apply_site_script(
                self.site_path(), site, test=settings.test, reload=settings.reload, then=record
            ),
            "nginx switch",
        )

    async def _stop_unless_served(self, color: Color) -> None:
        """Stop a slot that failed, unless nginx serves it (a switch whose answer was lost)."""
        try:
            served = (await self.state()).live
        except (DeployError, ExecutionError):
            return  # the host can't say: leave it running rather than stop what may be live
        if served != color:
            await self._stop(color)

    async def _quiesce(self, color: Color) -> None:
        """Wait (at most the drain timeout) until nothing is connected to `color`'s port."""
        await self._wait_drained(color, time.time() + self.strategy.drain_timeout)

    async def _wait_drained(self, color: Color, until: float) -> None:
        argv = nginx.established_argv(self.ports[color], address=self.strategy.upstream_host)
        while True:
            found = await self.executor.run(argv, check=False)
            if found.ok and nginx.count_established(found.stdout) == 0:
                return
            if time.time() >= until:
                return
            await asyncio.sleep(DRAIN_POLL_SECONDS)

    async def stop_live(self) -> str:
        """Stop the slot nginx serves: "" when it stopped (or none is live), else why not."""
        live = (await self.state()).live
        if live is None:
            return ""
        argv = supervisor.stop_argv(self.supervisor.conf, self.program(live))
        result = await self.executor.run(argv, check=False)
        return "" if result.ok else result.first_line() or f"exit status {result.exit_status}"

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
        if time.time() < until:
            await self._wait_drained(color, until)
        await self._stop(color)
        await run_script(self.executor, slots.drained_script(self.layout, color), "drained")


async def soak_probe(executor: Executor, target: Release) -> str:
    """One attempt of a canary's health check, host step "soak" (at the live slot's port for
    blue/green slots; else as the deployment's own check ran: in `current`, with $PORT):
    "" when it passes, else why not."""
    if target.strategy.uses_slots:
        return await BlueGreen(executor, target).probe_live()
    check = target.health
    if check is None:
        return ""
    once = check.model_copy(update={"retries": 0})
    health = await wait_healthy(
        executor, once, step="soak", cwd=target.layout.current, env=target.probe_env
    )
    return "" if health.healthy else health.detail


async def stop_program(executor: Executor, target: Release) -> str:
    """Stop the instance's program through the host's supervisor (for blue/green slots: the
    slot nginx serves): "" when it stopped, else why not. What a canary new to its service gets
    when its soak fails: nothing ran there before to go back to."""
    if target.strategy.uses_slots:
        return await BlueGreen(executor, target).stop_live()
    result = await executor.run(target.control.stop([target.program]), check=False)
    return "" if result.ok else result.first_line() or f"exit status {result.exit_status}"
