"""The `restart` strategy (and rollbacks) for every instance deployed on one host, together.

Each instance is its own deployment with its own outcome, but a step is one round trip for all
of them: one script checks every release, one tar stream carries every missing release, one
script switches every `current`, one supervisor call (supervisorctl `update`, or systemctl
`daemon-reload` and `restart`) restarts every program, one round of health checks and program
states runs them all at once. An instance that fails a step drops out with its reason (its
`current` switched back, its old release restarted) while the others go on. A rollback member
uploads nothing: its release must be kept on the host.

Every step runs on the host under a time limit, in a process group of its own that is
registered under its instances' directories while it runs; the first step of a deployment ends
whatever an interrupted deployment of the same instance left running there.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from shipyard.commands import inventory, release
from shipyard.commands.batch import PartResult, end_leftovers_script
from shipyard.commands.control import Control
from shipyard.commands.fence import fenced
from shipyard.commands.record import HostRecord, write_record_script
from shipyard.commands.script import UnsafeValue, chain, private_dir_script
from shipyard.deploy.health_rounds import await_healthy, restored_probes
from shipyard.deploy.hostops import STEP_LIMIT, run_parts
from shipyard.deploy.instance import Release
from shipyard.deploy.staging import stage_for_host
from shipyard.deploy.steplogs import StepLogs, output_of
from shipyard.errors import DeployError, ExecutionError
from shipyard.events import Phase
from shipyard.executors.base import (
    CommandFailed,
    CommandResult,
    Executor,
    Script,
)

# The time limit of the install step (all of a host's installs, one after another), enforced on
# the host (commands.batch); other steps get hostops.STEP_LIMIT.
INSTALL_LIMIT = 3600.0

Say = Callable[[str, Phase], None]  # (instance, the phase it enters)
T = TypeVar("T")


@dataclass
class Member:
    """One instance's deployment in the group, and how far it got."""

    target: Release
    deployment_id: str
    failure: str | None = None
    upload: bool = True  # False for a rollback: the release must be on the host already
    switched: bool = False
    previous: str | None = None  # the revision `current` named before the switch
    skipped: str | None = None  # why it stopped before anything live changed (cancelled)

    @property
    def name(self) -> str:
        return self.target.instance.name

    @property
    def revision(self) -> str:
        return self.target.instance.revision


class HostGroup:
    """Deploys `members` (all on the host of `executor`) with the restart strategy."""

    def __init__(
        self,
        executor: Executor,
        members: Sequence[Member],
        say: Say,
        fence: Callable[[], None] = lambda: None,
        *,
        stop: Callable[[], str | None] = lambda: None,
        logs: StepLogs | None = None,
        epoch: Callable[[], tuple[int, str]] = lambda: (0, ""),
    ) -> None:
        self.executor = executor
        # The controller's fencing epoch and its store's id: every step's scripts run behind
        # the host's fence (commands/fence.py) once they are known (epoch 0: not fenced).
        self.epoch = epoch
        self.members = list(members)
        self.say = say
        self.fence = fence  # raises (LeaseLost) when this controller must not start a step
        # The reason to stop (cancelled), asked before every step that changes nothing live
        # yet; once `current` is switched, the deployment runs to its end.
        self.stop = stop
        self.logs = logs  # where each member's output of each step is kept

    @property
    def alive(self) -> list[Member]:
        return [m for m in self.members if m.failure is None and m.skipped is None]

    async def deploy(self, *, at: datetime) -> None:
        """Steps 3 to 8 for every member; each ends with `failure` None or its reason (or,
        stopped before its switch, with `skipped`)."""
        try:
            for step in (self.upload, self._switch, self._restart, self._check_health):
                self.fence()
                if step in (self.upload, self._switch) and self._stopped():
                    break
                await step()
        except (DeployError, ExecutionError, UnsafeValue) as failure:
            self._fail(self.alive, str(failure))
        self.fence()
        await self._switch_back([m for m in self.members if m.failure is not None])
        try:
            self.fence()
            await self._finish(at)
        except (DeployError, ExecutionError, UnsafeValue) as failure:
            self._fail(self.alive, f"recording the release on the host failed: {failure}")

    # The steps.

    async def upload(self) -> None:
        """Put every release on the host unless it is there intact; install; mark complete.

        A member that must not upload (a rollback) fails unless its release is kept there.
        """
        kept = [m for m in self.alive if not m.upload]
        intact = [
            _first_step(m.target, release.is_intact_script(m.target.layout, m.revision))
            for m in kept
        ]
        for m, part in zip(
            kept,
            await self._run_parts(intact, "check release", owners=[[m] for m in kept]),
            strict=True,
        ):
            self._log([m], "check release", part)
            if not part.ok:
                self._fail([m], f"release {m.revision[:12]} is not kept on {self.executor.name}")
        members = [m for m in self.alive if m.upload]
        self._say(members, Phase.UPLOADING)
        scripts = [
            _first_step(m.target, release.prepare_script(m.target.layout, m.revision))
            for m in members
        ]
        prepared = await self._each(members, scripts, "prepare", guarded=False)
        missing = [m for m, out in prepared if not release.parse_prepare(out.stdout)]
        if not missing:
            return
        installs = {m.name for m in missing if _install_argv(m.target)}
        staging = Path(tempfile.mkdtemp(prefix="shipyard-releases-"))
        try:
            for root, group in _by_root(missing).items():
                targets = [m.target for m in group]
                archive = await asyncio.to_thread(stage_for_host, targets, installs, staging, root)
                try:
                    sent = await self.executor.run(release.extract_argv_at(root), stdin=archive)
                    self._log(group, "upload", sent)
                except ExecutionError as failure:
                    self._fail(group, f"upload failed: {failure}")
                    self._log(group, "upload", str(failure))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        installing = [m for m in missing if m.failure is None and m.name in installs]
        if installing and self._stopped():
            return
        if installing:
            self._say(installing, Phase.INSTALLING)
            installs_run = [_install_script(m.target) for m in installing]
            await self._each(installing, installs_run, "install", limit=INSTALL_LIMIT)
            marking = [m for m in installing if m.failure is None]
            marks = [release.mark_complete_script(m.target.layout, m.revision) for m in marking]
            await self._each(marking, marks, "mark complete")

    async def _switch(self) -> None:
        members = self.alive
        self._say(members, Phase.SWITCHING)
        scripts = [release.switch_current_script(m.target.layout, m.revision) for m in members]
        for m, out in await self._each(members, scripts, "switch"):
            m.switched, m.previous = True, release.parse_switch(out.stdout)

    async def _restart(self) -> None:
        members = self.alive
        self._say(members, Phase.RESTARTING)
        for name, why in (await self._apply_programs(members)).items():
            self._fail([m for m in members if m.name == name], f"restart failed: {why}")

    async def _apply_programs(self, members: list[Member]) -> dict[str, str]:
        """(Re)start the members' programs from their live releases: one call per supervisor.
        Returns why, for the members whose supervisor could not be driven."""
        failed: dict[str, str] = {}
        controls = _by_control(members)
        scripts = [
            control.apply(
                [
                    (m.target.program, f"{m.target.layout.current}/{control.release_file}")
                    for m in group
                ]
            )
            for control, group in controls.items()
        ]
        parts = await self._run_parts(scripts, "restart", owners=list(controls.values()))
        for group, part in zip(controls.values(), parts, strict=True):
            self._log(group, "restart", part)
            if not part.ok:
                failed.update(
                    {m.name: _part_failure(self.executor.name, "restart", part) for m in group}
                )
        return failed

    async def _check_health(self) -> None:
        """Every member's program RUNNING and its health check passing, or its reason."""
        members = self.alive
        self._say(members, Phase.HEALTH_CHECKING)
        failures = await await_healthy(self.executor, {m.name: m.target for m in members})
        for m in members:
            self._log([m], "health check", failures.get(m.name, "healthy"))
            if m.name in failures:
                m.failure = failures[m.name]

    async def _switch_back(self, failed: list[Member]) -> None:
        """Failed members that were switched: `current` back to the release before it, restarted
        and health-checked (with the service's health check as this deployment has it); with none
        before (a first deployment), their program stopped. What goes wrong here is added to each
        member's reason, never raised: the others' outcomes stand."""
        restore = [m for m in failed if m.switched and m.previous is not None]
        stop = [m for m in failed if m.switched and m.previous is None]
        notes: dict[str, str] = {}
        self._say([*restore, *stop], Phase.ROLLING_BACK)
        try:
            if restore:
                scripts = [
                    release.restore_current_script(m.target.layout, _known(m.previous))
                    for m in restore
                ]
                parts = await self._run_parts(scripts, "switch back", owners=[[m] for m in restore])
                back = []
                for m, part in zip(restore, parts, strict=True):
                    self._log([m], "switch back", part)
                    if part.ok:
                        back.append(m)
                    else:
                        notes[m.name] = _part_failure(self.executor.name, "switch back", part)
                for name, why in (await self._apply_programs(back)).items():
                    notes[name] = f"restarting it failed: {why}"
                restarted = [m for m in back if m.name not in notes]
                restored = {m.name: (m.target, _known(m.previous)) for m in restarted}
                checks = await restored_probes(self.executor, restored)
                targets = {m.name: m.target for m in restarted}
                notes.update(await await_healthy(self.executor, targets, checks))
            for control, group in _by_control(stop).items():
                names = [m.target.program for m in group]
                await self.executor.run(control.stop(names), check=False)
        except (ExecutionError, UnsafeValue) as lost:  # e.g. the host went away meanwhile
            for m in [*restore, *stop]:
                notes.setdefault(m.name, str(lost))
        for m in [*restore, *stop]:
            if m.name in notes:
                what = f"switching back to {m.previous}" if m.previous else "stopping it"
                m.failure = f"{m.failure}\n{what} failed too: {notes[m.name]}"

    async def _finish(self, at: datetime) -> None:
        """The host-side record of every deployed member; releases beyond `keep` pruned."""
        members = self.alive
        if not members:
            return
        scripts: list[Script] = []
        for m in members:
            record = HostRecord(
                service=m.target.instance.service,
                instance=m.name,
                revision=m.revision,
                deployment_id=m.deployment_id,
                deployed_at=at,
            )
            layout = m.target.layout
            scripts += [
                write_record_script(layout, record),
                inventory.list_script(layout),
                inventory.links_script(layout),
            ]
        owners = [[m] for m in members for _ in range(3)]  # three scripts each
        parts = await self._run_parts(scripts, "record", owners=owners)
        pruning: list[tuple[Member, Script]] = []
        for index, m in enumerate(members):
            wrote, listing, links = parts[3 * index : 3 * index + 3]
            self._log([m], "record", wrote)
            bad = next((p for p in (wrote, listing, links) if not p.ok), None)
            if bad is not None:
                m.failure = _part_failure(self.executor.name, "record", bad)
                continue
            doomed = inventory.plan_prune(
                inventory.parse_listing(listing.stdout),
                keep=m.target.strategy.keep_releases,
                links=inventory.parse_links(links.stdout),
                also_keep=[m.revision],
            )
            if doomed:
                pruning.append((m, inventory.prune_script(m.target.layout, doomed)))
        if pruning:
            await self._each([m for m, _ in pruning], [s for _, s in pruning], "prune")

    # Plumbing.

    async def _each(
        self,
        members: list[Member],
        scripts: list[Script],
        step: str,
        *,
        limit: float = STEP_LIMIT,
        guarded: bool = True,
    ) -> list[tuple[Member, PartResult]]:
        """Run one script per member in one round trip, registered under the members' directories
        while it runs (unless not `guarded`); members whose part failed drop out."""
        guards = [m.target.guard if guarded else None for m in members]
        parts = await self._run_parts(
            scripts, step, owners=[[m] for m in members], limit=limit, guards=guards
        )
        done = []
        for m, part in zip(members, parts, strict=True):
            self._log([m], step, part)
            if part.ok:
                done.append((m, part))
            else:
                self._fail([m], _part_failure(self.executor.name, step, part))
        return done

    async def _run_parts(
        self,
        scripts: list[Script],
        step: str,
        *,
        owners: Sequence[Sequence[Member]],
        limit: float = STEP_LIMIT,
        guards: list[str | None] | None = None,
    ) -> list[PartResult]:
        """Run `scripts` in one round trip; each runs behind the fence of the instances it
        works for (`owners`, one list per script) once the controller's epoch is known."""
        if not scripts:
            return []
        epoch, store = self.epoch()
        if epoch:
            scripts = [
                fenced(s, [m.target.layout.service_dir for m in who], epoch, store)
                for s, who in zip(scripts, owners, strict=True)
            ]
        return await run_parts(self.executor, scripts, step, limit=limit, guards=guards)

    def _fail(self, members: list[Member], reason: str) -> None:
        for m in members:
            if m.failure is None:
                m.failure = reason

    def _stopped(self) -> bool:
        """True (and every live member skipped with the reason) once `stop` gives one."""
        why = self.stop()
        if why is None:
            return False
        for m in self.alive:
            m.skipped = why
        return True

    def _log(
        self, members: list[Member], step: str, what: PartResult | CommandResult | str
    ) -> None:
        if self.logs is None:
            return
        for m in members:
            if isinstance(what, CommandResult):
                self.logs.add_result(m.deployment_id, step, what)
                continue
            if isinstance(what, str):
                status, output = None, what
            else:
                cut = what.stdout_truncated or what.stderr_truncated
                status, output = what.exit_status, output_of(what.stdout, what.stderr, cut=cut)
            self.logs.add(m.deployment_id, step, self.executor.name, status, output)

    def _say(self, members: list[Member], phase: Phase) -> None:
        for m in members:
            self.say(m.name, phase)


def _by_root(members: list[Member]) -> dict[str, list[Member]]:
    grouped: dict[str, list[Member]] = {}
    for m in members:
        grouped.setdefault(m.target.root, []).append(m)
    return grouped


def _by_control(members: list[Member]) -> dict[Control, list[Member]]:
    grouped: dict[Control, list[Member]] = {}
    for m in members:
        grouped.setdefault(m.target.control, []).append(m)
    return grouped


def _install_argv(target: Release) -> list[str] | None:
    install = target.config.get("commands", {}).get("install")
    return list(install) if install else None


def _install_script(target: Release) -> Script:
    env = {k: str(v) for k, v in target.config.get("env", {}).items()}
    argv = _install_argv(target) or ["true"]
    return release.install_script(target.layout, target.instance.revision, argv, env)


def _known(value: T | None) -> T:
    if value is None:
        raise AssertionError("checked above")
    return value


def _part_failure(host: str, step: str, part: PartResult) -> str:
    """A failed part described as a failed command is (host, step, exit status, stderr tail)."""
    result = CommandResult(host, Script("", name=step), part.exit_status, part.stdout, part.stderr)
    return str(CommandFailed(result))


def _first_step(target: Release, step: Script) -> Script:
    """The first step of an instance's deployment: its logs directory private, what an
    interrupted deployment left running ended, then `step`."""
    return chain(private_dir_script(target.layout.logs), end_leftovers_script(target.guard), step)


async def upload_release(executor: Executor, target: Release) -> None:
    """Put one release on its host unless it is there intact (blue/green's upload)."""
    member = Member(target, deployment_id="")
    await HostGroup(executor, [member], lambda instance, what: None).upload()
    if member.failure is not None:
        raise DeployError(member.failure)
