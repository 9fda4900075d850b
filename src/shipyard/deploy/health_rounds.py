"""Rounds of health checks and program states for the instances a host group deploys on one host."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Mapping

from pydantic import ValidationError

from shipyard.commands.batch import PartResult, batch
from shipyard.commands.control import HEALTH_FILE, Control
from shipyard.commands.health import TIMEOUT_MARGIN, HealthProbe, probe_for
from shipyard.commands.script import UnsafeValue, command_script
from shipyard.config.models import HealthCheck
from shipyard.deploy.hostops import STOPPED_ON_HOST, log_tail, parts_of, run_parts
from shipyard.deploy.instance import Release
from shipyard.executors.base import CommandTimeout, Executor, Script

# Without a health check, how long a program may take to be RUNNING.
NO_CHECK_ATTEMPTS, NO_CHECK_INTERVAL = 20, 0.25
# Supervisor states in which a program will not get healthy without being started again.
ENDED = frozenset({"FATAL", "EXITED"})

Probes = dict[str, HealthProbe | None]
# One round's answer: program states, why those not running are not, each probe's result.
Round = tuple[dict[str, str], dict[str, str], dict[str, PartResult]]

# Seconds past a round's limit the executor waits before it stops a round the host did not.
BACKSTOP = 10.0


def probe_of(target: Release) -> HealthProbe | None:
    """The health check `target` is deployed with, if it has one."""
    return probe_for(target.health) if target.health else None


async def await_healthy(
    executor: Executor, targets: Mapping[str, Release], probes: Probes | None = None
) -> dict[str, str]:
    """Rounds of every pending instance's health check plus one supervisor status, until each
    is RUNNING and healthy, out of attempts, or ended (FATAL, EXITED: it would not get
    healthy by waiting). `targets` are by instance name; `probes` (by default each target's
    own) too. Returns why, for the instances that did not get healthy: the last answer, the
    supervisor's reason (a spawn error) and the last lines of its stderr."""
    pending = dict(targets)
    if probes is None:
        probes = {name: probe_of(target) for name, target in pending.items()}
    attempts = dict.fromkeys(pending, 0)
    last: dict[str, str] = {}
    failures: dict[str, str] = {}
    # No supervisord program is RUNNING before its startsecs.
    await asyncio.sleep(max((c.settle for c in _by_control(targets)), default=0.0))
    while pending:
        round_targets = dict(pending)
        answered = await _health_round(executor, round_targets, probes)
        stopped = _stopped(round_targets, probes) if answered is None else ""
        for name, target in round_targets.items():
            attempts[name] += 1
            probe = probes[name]
            if answered is None:  # a round the host stopped is a failed attempt, as a slow probe is
                state, last[name] = "unknown", stopped
            else:
                state, why = _verdict(answered, name, target)
                if why is None:
                    del pending[name]
                    continue
                last[name] = why
            if state in ENDED or attempts[name] >= _attempts(probe):
                what = probe.description if probe else "the program runs"
                count = attempts[name]
                failures[name] = (
                    f"health check failed: {what}: failed {count} time(s), last: {last[name]}"
                )
                del pending[name]
        if pending:
            await asyncio.sleep(min(_interval(probes[name]) for name in pending))
    for name, target in targets.items():
        if name in failures:
            tail = await log_tail(executor, f"{target.layout.logs}/stderr.log")
            if tail:
                failures[name] = f"{failures[name]}\n{tail}"
    return failures


async def restored_probes(
    executor: Executor, restored: Mapping[str, tuple[Release, str]]
) -> Probes:
    """The health check each restored release (by instance name: its target and the revision
    switched back to) was deployed with (its own HEALTH_FILE); the one of this deployment for a
    release older than that file."""
    scripts = [
        command_script(("cat", "--", f"{target.layout.release(previous)}/{HEALTH_FILE}"))
        for target, previous in restored.values()
    ]
    parts = await run_parts(executor, scripts, "read health check")
    probes: Probes = {}
    for (name, (target, _)), part in zip(restored.items(), parts, strict=True):
        probes[name] = probe_of(target)
        if part.ok:
            with contextlib.suppress(ValueError, ValidationError, UnsafeValue):
                found = json.loads(part.stdout)
                probes[name] = probe_for(HealthCheck.model_validate(found)) if found else None
    return probes


def _verdict(answered: Round, name: str, target: Release) -> tuple[str, str | None]:
    """The program's state in one round, and why it is not healthy (None when it is)."""
    states, reasons, answers = answered
    state, answer = states.get(target.program, "not loaded"), answers.get(name)
    if state != "RUNNING":
        why = reasons.get(target.program)
        return state, f"program is {state}" + (f" ({why})" if why else "")
    if answer is None or answer.ok:
        return state, None
    return state, _first_line(answer) or f"exit status {answer.exit_status}"


def _round_limit(targets: Mapping[str, Release], probes: Probes) -> float:
    """How long the host gives one round: the slowest probe's timeout and a margin."""
    timeouts = [probe.timeout for name in targets if (probe := probes[name]) is not None]
    return max(timeouts, default=5.0) + TIMEOUT_MARGIN


def _stopped(targets: Mapping[str, Release], probes: Probes) -> str:
    limit = _round_limit(targets, probes)
    return f"the health round did not finish within {limit:g} s and was stopped"


async def _health_round(
    executor: Executor, targets: Mapping[str, Release], probes: Probes
) -> Round | None:
    """One attempt for each instance at once: program states and why those not running are
    not, and each probe's result; None when the round was stopped at its time limit, by the
    host or, when the host was too busy to, by the executor (every instance's attempt failed)."""
    checked = {name: probe for name in targets if (probe := probes[name]) is not None}
    controls = _by_control(targets)
    status_parts = [
        control.status([t.program for t in group]) for control, group in controls.items()
    ]
    # Like the program: in the live release, knowing its port.
    probe_parts = [
        command_script(probe.argv, cwd=targets[name].layout.current, env=targets[name].probe_env)
        for name, probe in checked.items()
    ]
    limit = _round_limit(targets, probes)
    combined = batch(
        [*status_parts, *probe_parts], secrets.token_hex(12), parallel=True, limit=limit
    )
    try:
        result = await executor.run(
            Script(combined.script.text, name="health"), timeout=limit + BACKSTOP, check=False
        )
    except CommandTimeout:  # the host was too busy even to stop it at its limit
        return None
    if result.exit_status == STOPPED_ON_HOST:
        return None
    parts = parts_of(combined, result, "health", limit)
    states: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for (control, group), part in zip(controls.items(), parts, strict=False):
        names = [t.program for t in group]
        states.update(control.states(part.stdout, names))
        reasons.update(control.reasons(part.stdout, names))
    answers = dict(zip(checked, parts[len(status_parts) :], strict=True))
    return states, reasons, answers


def _by_control(targets: Mapping[str, Release]) -> dict[Control, list[Release]]:
    grouped: dict[Control, list[Release]] = {}
    for target in targets.values():
        grouped.setdefault(target.control, []).append(target)
    return grouped


def _attempts(probe: HealthProbe | None) -> int:
    return probe.attempts if probe else NO_CHECK_ATTEMPTS


def _interval(probe: HealthProbe | None) -> float:
    return probe.interval if probe else NO_CHECK_INTERVAL


def _first_line(part: PartResult) -> str:
    for text in (part.stderr, part.stdout):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return ""
