"""What the deploy layer does on a host through its executor: scripts, supervisor, health."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass

from shipyard.commands.batch import Batch, PartResult, batch
from shipyard.commands.health import TIMEOUT_MARGIN, HealthProbe, probe_for
from shipyard.commands.script import Script, UnsafeValue, command_script
from shipyard.config.models import HealthCheck
from shipyard.errors import DeployError, ExecutionError
from shipyard.executors.base import CommandFailed, CommandResult, Executor

# The time limit of one host step, in seconds (an install gets longer: see hostgroup).
STEP_LIMIT = 300.0


async def run_script(
    executor: Executor, built: Script, name: str, *, timeout: float = STEP_LIMIT
) -> CommandResult:
    """Run a builder's script as one host step named `name` (its text travels on stdin to
    `sh -s`), stopped after `timeout` seconds (on the host itself for SSH hosts, which run it
    under coreutils `timeout`)."""
    return await executor.run(built.named(name), timeout=timeout)


# What a batch exits with when the host stopped it at its time limit (coreutils `timeout`).
STOPPED_ON_HOST = 124


async def run_parts(
    executor: Executor,
    scripts: list[Script],
    step: str,
    *,
    limit: float = STEP_LIMIT,
    guards: list[str | None] | None = None,
    timeout: float | None = None,
) -> list[PartResult]:
    """Run `scripts` as one batch (one round trip, one host step), each part's result back.
    Every part starts with the clean environment (commands.batch); `timeout`, if given, is
    the executor's own limit on the round trip, beyond the host's `limit`."""
    if not scripts:
        return []
    combined = batch(scripts, secrets.token_hex(12), limit=limit, guards=guards or ())
    result = await executor.run(combined.script.named(step), check=False, timeout=timeout)
    return parts_of(combined, result, step, limit)


def parts_of(combined: Batch, result: CommandResult, step: str, limit: float) -> list[PartResult]:
    """Each part's result from a batch's answer; ExecutionError when there is none: the host
    stopped the step at its time limit, or the batch itself failed (its stderr then says why)."""
    if result.exit_status == STOPPED_ON_HOST:
        raise ExecutionError(
            result.host, f"the {step} step did not finish within {limit:g} s: the host stopped it"
        )
    try:
        return combined.parse(result.stdout)
    except UnsafeValue:
        if not result.ok:
            raise CommandFailed(result) from None
        raise


@dataclass(frozen=True)
class HealthResult:
    healthy: bool
    attempts: int
    detail: str


async def probe_once(
    executor: Executor,
    probe: HealthProbe,
    step: str,
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> PartResult:
    """One attempt of `probe` as one host step named `step`: in `cwd` with `env` added to the
    clean environment every host step gets (never the controller's own), under the host's time
    limit of the attempt."""
    limit = probe.timeout + TIMEOUT_MARGIN
    part = command_script(probe.argv, cwd=cwd, env=env)
    [result] = await run_parts(executor, [part], step, limit=limit, timeout=limit + 10.0)
    return result


def first_line(part: PartResult) -> str:
    """The first non-empty line of a part's stdout, else of its stderr (what a reason shows)."""
    for text in (part.stdout, part.stderr):
        for line in text.splitlines():
            if line.strip():
                return line.strip()
    return ""


async def wait_healthy(
    executor: Executor,
    check: HealthCheck | None,
    *,
    step: str = "health",
    port: int | None = None,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    deadline: float | None = None,
) -> HealthResult:
    """Run the health check until it passes or its attempts run out (or, given a `deadline` in
    time.monotonic() seconds, until no attempt is left to start before it); each attempt is a
    host step named `step` run as `probe_once` does (`cwd`, `env`, the clean environment)."""
    if check is None:
        return HealthResult(True, 0, "no health check")
    probe = probe_for(check, port=port)
    last = ""
    attempt = 0
    for attempt in range(1, probe.attempts + 1):
        result = await probe_once(executor, probe, step, cwd=cwd, env=env)
        if result.ok:
            return HealthResult(True, attempt, probe.description)
        last = first_line(result) or f"exit status {result.exit_status}"
        if attempt == probe.attempts:
            break
        if deadline is not None and time.monotonic() + probe.interval >= deadline:
            break
        await asyncio.sleep(probe.interval)
    return HealthResult(
        False, attempt, f"{probe.description}: failed {attempt} time(s), last: {last}"
    )


async def log_tail(executor: Executor, path: str, lines: int = 10) -> str:
    result = await executor.run(("tail", "-n", str(lines), "--", path), check=False)
    return result.stdout.strip() if result.ok else ""


def require(condition: bool, message: str) -> None:
    if not condition:
        raise DeployError(message)
