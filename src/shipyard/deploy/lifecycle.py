"""The host side of `disable` and `delete`: one round trip per host for all its instances.

`disable` stops each program under its supervisor and keeps it from starting at boot (the
program's file unlinked from supervisord's include, or `systemctl disable --now`); the live
release, its config and the host-side record stay, so `enable` (a switch to the same release,
restart and health check: HostGroup without upload) brings it back. `delete` does the same and
then removes the service's directory: its releases, links, logs and record. An instance counts
as done only when its part of the batch answered; a host that cannot be reached fails them all,
and the store then marks nothing (store.lifecycle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shipyard.commands.batch import PartResult
from shipyard.commands.release import remove_service_script
from shipyard.commands.script import Script
from shipyard.deploy.hostops import first_line, run_parts
from shipyard.deploy.instance import Release
from shipyard.errors import ShipyardError
from shipyard.executors.base import Executor


@dataclass(frozen=True)
class TakenDown:
    """One instance's answer: None when its host did it, else why not."""

    name: str
    failure: str | None


def scripts(releases: Sequence[Release], *, delete: bool) -> list[Script]:
    """A part per release: its program stopped for good (and, to delete, its directory gone)."""
    parts = []
    for target in releases:
        stop = target.control.remove if delete else target.control.disable
        parts.append(stop([target.program]))
        if delete:
            parts.append(remove_service_script(target.layout))
    return parts


async def take_down(
    executor: Executor, releases: Sequence[Release], *, delete: bool
) -> list[TakenDown]:
    """Disable (or delete) `releases` on `executor`'s host in one batch; each one's answer."""
    step = "delete" if delete else "disable"
    try:
        parts = await run_parts(executor, scripts(releases, delete=delete), step)
    except ShipyardError as failure:  # unreachable, or the batch did not answer
        return [TakenDown(target.instance.name, f"{step} failed: {failure}") for target in releases]
    per = 2 if delete else 1
    answers = []
    for index, target in enumerate(releases):
        mine = parts[index * per : (index + 1) * per]
        bad = next((part for part in mine if not part.ok), None)
        answers.append(TakenDown(target.instance.name, None if bad is None else _why(step, bad)))
    return answers


def _why(step: str, part: PartResult) -> str:
    return f"{step} failed: {first_line(part) or f'exit status {part.exit_status}'}"
