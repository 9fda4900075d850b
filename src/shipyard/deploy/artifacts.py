"""Pushing system-wide artifacts to hosts: one task per host, bounded, a result per host.

Each host gets its artifacts one after the other (commands.shared_artifacts: every file written
aside, then renamed into place, then checksummed by the host); hosts run in parallel, at most
`limit` at once. A host whose target looks unchanged is first asked for its checksums, and
pushed to only when what it holds differs (a file removed or edited by hand). A host that
fails fails alone: its old files are left as they were, and no other host is undone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from shipyard.commands.shared_artifacts import (
    FileState,
    checksums_script,
    host_path,
    parse_checksums,
    push_script,
    sha256_of,
)
from shipyard.config.shared_artifacts import SiteArtifact
from shipyard.config.topology import HostRef
from shipyard.errors import ExecutionError, ShipyardError
from shipyard.events import Event, EventBus, Phase
from shipyard.executors.base import CommandFailed, Executor
from shipyard.plan.artifacts import HostTarget
from shipyard.store.artifacts import ArtifactResult

STEP_LIMIT = 120.0


@dataclass(frozen=True)
class Push:
    """One artifact for one host: what the plan says, what the site gets, where the host is."""

    target: HostTarget
    artifact: SiteArtifact
    ref: HostRef


async def push_all(
    pushes: Sequence[Push],
    connect: Callable[[HostRef], Executor],
    *,
    lookup: Callable[[str], str],
    limit: int,
    events: EventBus,
) -> list[ArtifactResult]:
    """Every push done (or failed), hosts in parallel; the results in the order given."""
    by_host: dict[str, list[int]] = {}
    for index, push in enumerate(pushes):
        by_host.setdefault(push.ref.name, []).append(index)
    results: list[ArtifactResult | None] = [None] * len(pushes)
    gate = asyncio.Semaphore(max(1, limit))

    async def host(indexes: list[int]) -> None:
        async with gate:
            executor = connect(pushes[indexes[0]].ref)
            for index in indexes:
                result = await push_one(executor, pushes[index], lookup)
                results[index] = result
                events.publish(_event(result))

    await asyncio.gather(*(host(indexes) for indexes in by_host.values()))
    await events.flush()
    return [r for r in results if r is not None]


async def push_one(executor: Executor, push: Push, lookup: Callable[[str], str]) -> ArtifactResult:
    """One artifact on one host: unchanged (the host holds it), success, or failed (why)."""
    target, artifact = push.target, push.artifact
    try:
        contents = artifact.realise(lookup)
        paths = [host_path(executor.root, artifact.target, name) for name, _ in contents]
        expected = [FileState(artifact.mode, sha256_of(data)) for _, data in contents]
        if not target.changed and await _holds(executor, paths, expected):
            return _result(target, "unchanged")
        script = push_script(list(zip(paths, (data for _, data in contents), strict=True)),
                             artifact.mode)  # fmt: skip
        answer = await executor.run(script, timeout=STEP_LIMIT)
        found = parse_checksums(answer.stdout, len(paths))
    except CommandFailed as failure:
        return _result(target, "failed", _why(failure))
    except ExecutionError as failure:
        return _result(target, "failed", failure.reason)
    except ShipyardError as failure:
        return _result(target, "failed", str(failure))
    if found != expected:
        return _result(target, "failed", "the host reports other content than was sent")
    return _result(target, "success")


async def _holds(executor: Executor, paths: list[str], expected: list[FileState]) -> bool:
    answer = await executor.run(checksums_script(paths), timeout=STEP_LIMIT)
    return parse_checksums(answer.stdout, len(paths)) == expected


def _why(failure: CommandFailed) -> str:
    lines = [line for line in failure.result.stderr.splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit status {failure.result.exit_status}"


def _result(target: HostTarget, result: str, reason: str = "") -> ArtifactResult:
    return ArtifactResult(target.artifact, target.site, target.host, result, target.version, reason)


def _event(result: ArtifactResult) -> Event:
    detail = result.reason or f"version {result.version[:12]}"
    return Event(
        Phase.ARTIFACT, datetime.now(UTC), site=result.site, host=result.host,
        result=result.result, detail=detail, subject=result.artifact,
    )  # fmt: skip
