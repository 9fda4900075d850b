"""The health monitor: one round trip per host reads what it runs, and the round's verdicts
become the store's health rows and, where something changed, events.

A host's round is one batch (commands.batch, its parts run at once under the host's time
limit): the program states of its supervisor, where supervisord's program files point, which
services have a host record under the deploy root, and for each watched instance its host
record, its links, how the files of its deployed release differ from their checksums, and its
health check. What the host answers is compared with the store (plan.drift, plan.health).

A round is bounded: at most `in_flight` hosts read at once, each under the time limit of its slowest
health check plus a margin (and the executor's backstop past it). What changed since the last
round is published as events: a host going offline or coming back (HEALTH), a host's new error
(HOST_ERROR), an instance's health changing (HEALTH), drift appearing, changing or going away
(DRIFT).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from shipyard.commands import inspect, inventory
from shipyard.commands.batch import PartResult, batch
from shipyard.commands.control import Control, Supervisord
from shipyard.commands.health import TIMEOUT_MARGIN, HealthProbe, probe_for
from shipyard.commands.record import HostRecord, parse_record, read_record_argv
from shipyard.commands.script import Script, UnsafeValue, command_script
from shipyard.deploy.drift import (
    Drift,
    Expected,
    Observed,
    drift_of,
    live_program,
    unknown_services,
)
from shipyard.deploy.health_rounds import BACKSTOP
from shipyard.deploy.hostops import STOPPED_ON_HOST, first_line, parts_of
from shipyard.deploy.instance import Release
from shipyard.errors import ExecutionError
from shipyard.events import Event, Phase
from shipyard.executors.base import Executor
from shipyard.executors.fanout import HostOutcome
from shipyard.plan.health import HostState, InstanceHealth, host_state, instance_health
from shipyard.store.health import HostHealthRow, InstanceHealthRow

# How many hosts one round reads at once.
IN_FLIGHT = 32


@dataclass(frozen=True)
class Watched:
    """One instance the monitor watches: what the store says, and its release (paths, the
    supervisor, the health check)."""

    expected: Expected
    target: Release

    @property
    def name(self) -> str:
        return self.expected.instance

    @property
    def deployed(self) -> bool:
        return self.expected.revision is not None and self.expected.lifecycle != "deleted"


@dataclass(frozen=True)
class WatchedHost:
    host: str
    site: str
    root: str
    instances: tuple[Watched, ...]
    known: frozenset[str]  # the services the store knows on this host (orphans too)


@dataclass(frozen=True)
class InstanceAnswer:
    state: str | None  # its live program's
    probe_error: str | None
    drift: tuple[Drift, ...]


@dataclass(frozen=True)
class HostAnswer:
    instances: dict[str, InstanceAnswer]
    unknown: tuple[Drift, ...] = ()


@dataclass(frozen=True)
class RoundResult:
    """What one round wrote: the rows, and the events it published."""

    hosts: list[HostHealthRow]
    instances: list[InstanceHealthRow]
    unknown: list[Drift]
    events: list[Event] = field(default_factory=list)


async def read_host(executor: Executor, host: WatchedHost, *, deep: bool) -> HostAnswer:
    """One round trip: everything the round needs of `host`, compared with the store."""
    controls: dict[Control, list[str]] = {}
    for w in host.instances:
        names = controls.setdefault(w.target.control, [])
        for name in _programs(w):
            if name not in names:
                names.append(name)
    parts: list[Script] = [control.status(names) for control, names in controls.items()]
    linked = [c for c in controls if isinstance(c, Supervisord)]
    parts += [inspect.program_links_script(c.paths) for c in linked]
    parts.append(inspect.recorded_services_script(host.root))
    for w in host.instances:
        layout = w.target.layout
        parts.append(command_script(read_record_argv(layout)))
        parts.append(inventory.links_script(layout))
        if w.deployed and w.expected.revision is not None:
            parts.append(inspect.files_script(layout, w.expected.revision, deep=deep))
    probed = [w for w in host.instances if _probe(w) is not None]
    for w in probed:
        probe = _probe(w)
        assert probe is not None
        parts.append(
            command_script(probe.argv, cwd=w.target.layout.current, env=w.target.probe_env)
        )
    limit = max((p.timeout for w in probed if (p := _probe(w))), default=5.0) + TIMEOUT_MARGIN
    combined = batch(parts, secrets.token_hex(12), parallel=True, limit=limit)
    result = await executor.run(
        Script(combined.script.text, name="health"), timeout=limit + BACKSTOP, check=False
    )
    if result.exit_status == STOPPED_ON_HOST:
        raise ExecutionError(result.host, f"the health round did not finish within {limit:g} s")
    answers = iter(parts_of(combined, result, "health", limit))
    states: dict[str, str] = {}
    for control, names in controls.items():
        states.update(control.states(next(answers).stdout, names))
    program_links: dict[str, str] | None = None
    for _ in linked:
        program_links = {
            **(program_links or {}),
            **inspect.parse_program_links(next(answers).stdout),
        }
    recorded = inspect.parse_recorded_services(next(answers).stdout)
    observed: dict[str, Observed] = {}
    for w in host.instances:
        record_part, links_part = next(answers), next(answers)
        files = inspect.parse_files(next(answers).stdout) if w.deployed else None
        record, error = _record(record_part)
        controlled_here = isinstance(w.target.control, Supervisord)
        observed[w.name] = Observed(
            record=record,
            record_error=error,
            links=inventory.parse_links(links_part.stdout),
            files=files,
            states=states,
            program_links=program_links if controlled_here else None,
        )
    probe_errors = {w.name: _failure(next(answers)) for w in probed}
    found: dict[str, InstanceAnswer] = {}
    for w in host.instances:
        seen = observed[w.name]
        drift = drift_of(w.expected, seen, w.target.layout.service_dir)
        state = states.get(live_program(w.expected, seen))
        found[w.name] = InstanceAnswer(state, probe_errors.get(w.name), tuple(drift))
    unknown = unknown_services(host.host, recorded, set(host.known), host.root)
    return HostAnswer(found, tuple(unknown))


class Monitor:
    """Rounds over watched hosts. `executor(host)` gives a host's executor (from a pool the
    caller keeps open across rounds); `publish` takes each event (masked already); `mask`
    masks what a host said before it is stored or published."""

    def __init__(
        self,
        executor: Callable[[WatchedHost], Executor],
        publish: Callable[[Event], None],
        mask: Callable[[str], str],
        *,
        offline_after: float,
        started: datetime,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        self._executor = executor
        self._publish = publish
        self._mask = mask
        self.offline_after = offline_after
        self.started = started
        self._gate = asyncio.Semaphore(in_flight)
        # Each host's read in flight: a host slower than a round is waited for no longer than
        # the round; its answer is taken by the first round after it came.
        self._pending: dict[str, asyncio.Task[HostOutcome[HostAnswer]]] = {}

    async def _read(self, host: WatchedHost, deep: bool) -> HostOutcome[HostAnswer]:
        async with self._gate:
            started = time.monotonic()
            try:
                answer = await read_host(self._executor(host), host, deep=deep)
            except Exception as error:  # a host's failure is data; the others go on
                return HostOutcome(host.host, error=error, duration=time.monotonic() - started)
            return HostOutcome(host.host, answer, duration=time.monotonic() - started)

    def close(self) -> None:
        """Cancel the reads still in flight (when the monitor stops)."""
        for task in self._pending.values():
            task.cancel()
        self._pending.clear()

    async def round(
        self,
        hosts: Sequence[WatchedHost],
        before_hosts: Mapping[str, HostHealthRow],
        before_instances: Mapping[str, InstanceHealthRow],
        now: Callable[[], datetime],
        *,
        deep: bool = False,
        wait: float | None = None,
    ) -> RoundResult:
        """Read every host (one whose read from an earlier round is still in flight is not read
        again), waiting at most `wait` seconds (None: until every read ends, each bounded by
        its time limit); the rows to store and the events published. A host that did not
        answer keeps what was known of it, its state aged to `now`."""
        for host in hosts:
            if host.host not in self._pending:
                self._pending[host.host] = asyncio.create_task(
                    self._read(host, deep), name=f"health {host.host}"
                )
        chosen = [self._pending[h.host] for h in hosts]
        if chosen:
            await asyncio.wait(chosen, timeout=wait)
        outcomes: dict[str, HostOutcome[HostAnswer]] = {}
        for host in hosts:
            task = self._pending[host.host]
            if task.done():  # else still reading: no answer yet, its result counts next time
                del self._pending[host.host]
                outcomes[host.host] = task.result()
        at = now()
        out = RoundResult([], [], [])
        for host in hosts:
            self._host(host, outcomes.get(host.host), before_hosts.get(host.host), at, out)
            answer = outcomes.get(host.host)
            answered = answer.value if answer is not None and answer.ok else None
            for w in host.instances:
                self._instance(host, w, answered, before_instances.get(w.name), at, out)
            if answered is not None:
                out.unknown.extend(answered.unknown)
        return out

    def _host(
        self,
        host: WatchedHost,
        outcome: HostOutcome[HostAnswer] | None,
        before: HostHealthRow | None,
        at: datetime,
        out: RoundResult,
    ) -> None:
        last_ok = before.last_ok_at if before is not None else None
        error = before.error if before is not None else None
        if outcome is not None:
            if outcome.ok:
                last_ok, error = at, None
            else:
                error = self._mask(outcome.reason) or "no answer"
        watched_since = max(self.started, before.since) if before is not None else self.started
        state = host_state(last_ok, at, watched_since, self.offline_after)
        changed = before is None or before.state != state.value
        since = at if changed else before.since  # type: ignore[union-attr]
        out.hosts.append(HostHealthRow(host.host, host.site, state, since, last_ok, at, error))
        if error is not None and (before is None or before.error != error):
            self._say(out, Event(Phase.HOST_ERROR, at, site=host.site, host=host.host,
                                 result="error", detail=error))  # fmt: skip
        if changed and not (before is None and state is HostState.UNKNOWN):
            detail = "" if state is HostState.ONLINE else (error or "")
            self._say(out, Event(Phase.HEALTH, at, site=host.site, host=host.host,
                                 result=state.value, detail=detail))  # fmt: skip

    def _instance(
        self,
        host: WatchedHost,
        w: Watched,
        answer: HostAnswer | None,
        before: InstanceHealthRow | None,
        at: datetime,
        out: RoundResult,
    ) -> None:
        mine = answer.instances.get(w.name) if answer is not None else None
        health, why = instance_health(
            lifecycle=w.expected.lifecycle,
            deployed=w.deployed,
            answered=mine is not None,
            state=mine.state if mine is not None else None,
            probe_error=mine.probe_error if mine is not None else None,
        )
        why = self._mask(why)
        if mine is not None:
            drift = [self._masked(d).to_json() for d in mine.drift]
        else:  # not read this round: what was known stands
            drift = list(before.drift) if before is not None else []
        changed = before is None or before.health != health.value
        since = at if changed else before.since  # type: ignore[union-attr]
        site, name = host.site, w.name
        out.instances.append(
            InstanceHealthRow(name, site, host.host, health.value, since, why, at, drift)
        )
        if changed and health is not InstanceHealth.UNKNOWN:
            self._say(out, Event(Phase.HEALTH, at, instance=name, site=site, host=host.host,
                                 result=health.value, detail=why))  # fmt: skip
        was = [d["detail"] for d in before.drift] if before is not None else []
        now_drift = [str(d["detail"]) for d in drift]
        if mine is not None and now_drift != was:
            result, detail = ("drifted", "; ".join(now_drift)) if now_drift else ("resolved", "")
            self._say(out, Event(Phase.DRIFT, at, instance=name, site=site, host=host.host,
                                 result=result, detail=detail))  # fmt: skip

    def _masked(self, drift: Drift) -> Drift:
        return Drift(drift.instance, drift.kind, self._mask(drift.detail))

    def _say(self, out: RoundResult, event: Event) -> None:
        out.events.append(event)
        self._publish(event)


def _programs(w: Watched) -> list[str]:
    if w.expected.bluegreen:
        service = w.expected.service
        return [w.expected.program, f"{service}-blue", f"{service}-green"]
    return [w.expected.program]


def _probe(w: Watched) -> HealthProbe | None:
    if w.expected.lifecycle != "active" or not w.deployed or w.target.health is None:
        return None
    return probe_for(w.target.health)


def _record(part: PartResult) -> tuple[HostRecord | None, str | None]:
    if not part.ok:
        return None, None  # no record (cat exits 1)
    try:
        return parse_record(part.stdout), None
    except UnsafeValue as error:
        return None, str(error)


def _failure(part: PartResult) -> str | None:
    return None if part.ok else (first_line(part) or f"exit status {part.exit_status}")
