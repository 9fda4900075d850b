"""Rollouts as tasks: start one, get its id at once, then wait for it, follow it or cancel it.

`start_deploy` and `start_rollback` start the Deployer as a task on the running loop and return
a `RolloutHandle` as soon as the rollout's row is written (its ROLLOUT_STARTED event), before
any host is touched. The handle records every event of its rollout, so any number of followers
see them all, from the first, in order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from shipyard.app.selectors import find_instance
from shipyard.app.session import Session
from shipyard.errors import DeployError, UsageError
from shipyard.events import Event, EventBus, Phase
from shipyard.plan.lifecycle import Command, State, check, state_of

if TYPE_CHECKING:
    from shipyard.config.flatten import Instance
    from shipyard.config.topology import HostRef
    from shipyard.deploy.manager import Deployer, RolloutReport
    from shipyard.executors.base import Executor
    from shipyard.executors.factory import ExecutorPool

EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class OutcomeView:
    """What happened to one instance in a rollout (reason masked)."""

    instance: str
    result: str  # success, failed, skipped, unchanged, rejected, lost, planned
    revision: str
    reason: str = ""
    deployment_id: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "result": self.result,
            "revision": self.revision,
            "reason": self.reason,
            "deployment_id": self.deployment_id,
            "seconds": self.seconds,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> OutcomeView:
        return cls(
            instance=str(value["instance"]),
            result=str(value["result"]),
            revision=str(value.get("revision") or ""),
            reason=str(value.get("reason") or ""),
            deployment_id=value.get("deployment_id"),
            seconds=float(value.get("seconds") or 0.0),
        )


NOT_DONE = ("failed", "rejected", "lost")


@dataclass(frozen=True)
class RolloutResult:
    """A finished rollout: its id, each instance's outcome, and the reason if cancelled."""

    rollout_id: str
    outcomes: tuple[OutcomeView, ...]
    cancelled: str | None = None

    @property
    def failed(self) -> list[OutcomeView]:
        return [o for o in self.outcomes if o.result in NOT_DONE]

    @property
    def ok(self) -> bool:
        return not self.failed and not any(o.result == "skipped" for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes:
            out[o.result] = out.get(o.result, 0) + 1
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, Any]:
        return {
            "rollout": self.rollout_id,
            "ok": self.ok,
            "cancelled": self.cancelled,
            "outcomes": [o.to_json() for o in self.outcomes],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> RolloutResult:
        """A result as `to_json` gives it, or as a rollout's view (history.rollout) does."""
        outcomes = tuple(OutcomeView.from_json(o) for o in value.get("outcomes", []))
        rollout_id = value.get("rollout", value.get("id"))
        return cls(str(rollout_id), outcomes, value.get("cancelled"))

    @classmethod
    def of(cls, report: RolloutReport) -> RolloutResult:
        outcomes = tuple(
            OutcomeView(o.instance, o.result, o.revision, o.reason, o.deployment_id, o.seconds)
            for o in report.outcomes
        )
        return cls(report.rollout_id, outcomes, report.cancelled)


class _Record:
    """Every event of one rollout as it comes, for any number of followers."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.closed = False
        self._changed = asyncio.Event()

    def add(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    async def follow(self) -> AsyncIterator[Event]:
        seen = 0
        while True:
            while seen < len(self.events):
                event = self.events[seen]
                seen += 1
                yield event
                if event.final:
                    return
            if self.closed:
                return
            self._changed.clear()
            await self._changed.wait()


class RolloutHandle:
    """A rollout running as a task on this loop. `id` is its rollouts row, already written."""

    def __init__(
        self,
        rollout_id: str,
        task: asyncio.Task[RolloutReport],
        deployer: Deployer,
        record: _Record,
    ) -> None:
        self.id = rollout_id
        self._task = task
        self._deployer = deployer
        self._record = record

    @property
    def done(self) -> bool:
        return self._task.done()

    @property
    def events(self) -> list[Event]:
        """The events so far, in order."""
        return list(self._record.events)

    async def wait(self) -> RolloutResult:
        """The result once the rollout is over. Cancelling the waiter does not cancel the
        rollout (`cancel` does that)."""
        report = await asyncio.shield(self._task)
        return RolloutResult.of(report)

    def cancel(self, reason: str) -> None:
        """No new wave, batch or host step starts; steps in flight finish; what did not run is
        skipped with "cancelled: <reason>"."""
        self._deployer.cancel(reason)

    def follow(self) -> AsyncIterator[Event]:
        """Every event of the rollout, from its first, until ROLLOUT_FINISHED."""
        return self._record.follow()

    def abort(self, reason: str) -> None:
        """Stop the rollout's task at once (steps in flight are cut off): for a server whose
        grace period ran out after `cancel`. The store's record is then finished by the caller
        (`Store.interrupt_controller`)."""
        self._task.cancel(reason)


def deploy_request(names: Sequence[str] | None, site: str | None, force: bool) -> str:
    """The request as the audit log records it: `deploy greeter --site east --force`."""
    return " ".join(
        ["deploy", *(names or []), *([f"--site {site}"] if site else []), *(["--force"] * force)]
    )


async def start_deploy(
    session: Session,
    instances: Sequence[Instance],
    *,
    request: str,
    dry_run: bool = False,
    force: bool = False,
    on_event: EventSink | None = None,
    config_version: int | None = None,
) -> RolloutHandle:
    """Start deploying what is stale among `instances` (all with `force`), in dependency waves;
    returns once the rollout's row is written. A dry run writes nothing and is over at once.
    `config_version` is the server's config version the instances come from (recorded)."""
    chosen = list(instances)

    def work(deployer: Deployer, rollout_id: str) -> Awaitable[RolloutReport]:
        return deployer.deploy(
            chosen, request=request, dry_run=dry_run, force=force, rollout_id=rollout_id
        )

    return await start_work(session, work, on_event, config_version)


def rollback_target(session: Session, name: str, *, to: str | None = None) -> Instance:
    """The instance as it was deployed at the revision to go back to: `to` (a prefix will do),
    else the newest successful one before the live one."""
    current = find_instance(session.flatten(), name)
    store = session.store
    live = store.instance_state(current.name)
    state = state_of(live.status.value, live.lifecycle.value) if live else State.NEVER_DEPLOYED
    if state in (State.DISABLED, State.DELETED):  # refused, saying what to do instead
        check(Command.ROLLBACK, current.name, state)
    live_revision = live.deployed_revision if live is not None else None
    candidates = [
        d
        for d in store.deployments(instance=current.name)
        if d.status.value == "success" and d.revision != live_revision
    ]
    if to is not None:
        candidates = [d for d in candidates if d.revision.startswith(to)]
    if not candidates:
        wanted = f"no revision {to}" if to else "no earlier successful release"
        raise UsageError(f"{current.name}: {wanted} to roll back to")
    snapshot = store.snapshot_of(current.name, candidates[0].revision)
    if snapshot is None:
        raise DeployError(f"{current.name}: no snapshot of {candidates[0].revision[:12]}")
    return current.as_deployed(snapshot.revision, snapshot.config, snapshot.secrets)


async def start_rollback(
    session: Session,
    instance: Instance,
    *,
    request: str,
    on_event: EventSink | None = None,
    config_version: int | None = None,
) -> RolloutHandle:
    """Start switching `instance` (from `rollback_target`) back to its kept release, as a
    rollout of its own; nothing is uploaded."""

    def work(deployer: Deployer, rollout_id: str) -> Awaitable[RolloutReport]:
        return deployer.rollback(instance, request=request, rollout_id=rollout_id)

    return await start_work(session, work, on_event, config_version)


async def start_work(
    session: Session,
    work: Callable[[Deployer, str], Awaitable[RolloutReport]],
    on_event: EventSink | None,
    config_version: int | None = None,
) -> RolloutHandle:
    from shipyard.deploy.manager import Deployer

    flat = session.flatten()
    store = session.store
    pool = session.executor_pool()
    bus = EventBus(store.append_events)
    record = _Record()
    rollout_id = str(uuid.uuid4())
    started: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def heard(event: Event) -> None:
        record.add(event)
        if on_event is not None:
            on_event(event)
        if event.phase is Phase.ROLLOUT_STARTED and not started.done():
            started.set_result(None)

    bus.subscribe(heard)
    deployer = Deployer(
        flat,
        store,
        _connect(pool),
        session.actor,
        max_in_flight=flat.loaded.project.ssh.max_in_flight,
        events=bus,
        masker=session.masker(),
        controller=session.controller,
        policy=session.policy,
        config_version=config_version,
    )

    async def run() -> RolloutReport:
        try:
            async with pool:
                return await work(deployer, rollout_id)
        finally:
            record.close()

    task = asyncio.get_running_loop().create_task(run(), name=f"rollout {rollout_id}")
    either: list[asyncio.Future[Any]] = [task, started]
    await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
    if task.done() and not started.done():
        task.result()  # raises what stopped it before its row was written
    started.cancel()
    return RolloutHandle(rollout_id, task, deployer, record)


def _connect(pool: ExecutorPool) -> Callable[[HostRef], Executor]:
    def connect(ref: HostRef) -> Executor:
        return pool.executor(ref.name, ref.host)

    return connect


def interrupt(session: Session, controller_id: str, reason: str) -> list[str]:
    """Mark what a controller of this process still has active as failed ("interrupted:
    <reason>") and finish its rollouts; the ids of the deployments so marked."""
    return session.store.interrupt_controller(controller_id, reason).deployments


def recover_gone(session: Session) -> tuple[list[str], list[str]]:
    """Fail the deployments and finish the rollouts whose controller is gone (a replica or CLI
    whose lease ran out, or whose process has exited): the deployments' and rollouts' ids."""
    found = session.store.recover_interrupted(here=session.controller)
    return found.deployments, found.rollouts
