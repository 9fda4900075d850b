"""Deployments begun in the store, run on their hosts and recorded: many at once.

The `restart` deployments of one host go together (HostGroup: one round trip per step for all
of them); blue/green switches and rollbacks run one by one. The store sees batches: one
transaction to begin them all, one to start them, one per host to record the outcomes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal, TypeVar

from shipyard.config.flatten import Flattened, Instance
from shipyard.config.topology import HostRef, all_hosts
from shipyard.deploy import lifecycle
from shipyard.deploy.bluegreen import BlueGreen, Drain
from shipyard.deploy.hostgroup import HostGroup, Member
from shipyard.deploy.instance import Release, finish_on_host
from shipyard.deploy.lease import Lease, LeasePolicy, patiently
from shipyard.deploy.steplogs import Logged, StepLogs
from shipyard.errors import (
    AlreadyDeployed,
    ConcurrentDeployment,
    DeployError,
    ExecutionError,
    LeaseLost,
    NotActive,
    StoreConflict,
    StoreError,
)
from shipyard.events import Event, EventBus, Phase
from shipyard.executors.base import Executor
from shipyard.masking import Masker
from shipyard.plan.lifecycle import LifecycleRefused
from shipyard.store import (
    Controller,
    DeploymentKind,
    DeploymentRequest,
    DeploymentStatus,
    Finish,
    Store,
    utc_now,
)

# "lost": the host work's outcome is not in the store (the lease was lost, or the store refused
# or could not take the result); never counted as a success.
Result = Literal["success", "failed", "skipped", "unchanged", "rejected", "planned", "lost"]
Connect = Callable[[HostRef], Executor]
T = TypeVar("T")


class Cancelled(Exception):
    """Raised before a host step once the rollout is cancelled (nothing live changed yet)."""


@dataclass(frozen=True)
class Outcome:
    """What happened to one instance in a rollout."""

    instance: str
    result: Result
    revision: str
    reason: str = ""
    deployment_id: str | None = None
    seconds: float = 0.0


@dataclass
class Runs:
    """Runs deployments of `flat`'s instances on their hosts (one executor per host, reused)."""

    flat: Flattened
    store: Store
    connect: Connect
    actor: str
    events: EventBus  # every phase of every deployment is published here
    masker: Masker  # every reason passes it before it is recorded, published or returned
    controller: Controller
    policy: LeasePolicy = field(default_factory=LeasePolicy)
    # Set by Deployer.cancel: the reason; no deployment begins once it is set.
    cancelled: str | None = None
    lease: Lease = field(init=False)
    logs: StepLogs = field(init=False)  # the host output of every step, kept in the store
    _executors: dict[str, Executor] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.lease = Lease(self.store, self.controller, self.policy, lambda: self._active)
        self.logs = StepLogs(self.store.append_step_logs, self.masker)

    @property
    def active(self) -> frozenset[str]:
        """The deployments running now (their leases are renewed)."""
        return frozenset(self._active)

    def executor(self, host: str) -> Executor:
        if host not in self._executors:
            self._executors[host] = self.connect(all_hosts(self.flat.loaded.project)[host])
        return self._executors[host]

    async def close(self) -> None:
        await asyncio.gather(*(e.close() for e in self._executors.values()))
        self._executors.clear()

    def release(self, instance: Instance) -> Release:
        ref = all_hosts(self.flat.loaded.project)[instance.host]
        return Release(instance, self.flat.realise(instance), ref, self.flat.loaded.home)

    def say(
        self,
        instance: Instance,
        phase: Phase,
        rollout_id: str | None,
        deployment_id: str | None = None,
        *,
        result: str | None = None,
        detail: str = "",
    ) -> None:
        """Publish one event about `instance` (its `detail` masked)."""
        self.events.publish(
            Event(
                phase, utc_now(), rollout_id, deployment_id, instance.name, instance.site,
                instance.host, result, self.masker(detail) if detail else "",
            )
        )  # fmt: skip

    def finished(self, instance: Instance, outcome: Outcome, rollout_id: str | None) -> Outcome:
        """Publish the FINISHED event of `outcome`; returns it."""
        self.say(
            instance, Phase.FINISHED, rollout_id, outcome.deployment_id,
            result=outcome.result, detail=outcome.reason,
        )  # fmt: skip
        return outcome

    async def deploy_many(
        self,
        instances: Sequence[Instance],
        limit: asyncio.Semaphore,
        rollout_id: str | None,
        *,
        kind: DeploymentKind = DeploymentKind.DEPLOY,
        ids: dict[str, str] | None = None,
        force: bool = False,
    ) -> list[Outcome]:
        """Deployments of `instances` (one each), begun and recorded in batches, run in
        parallel: the `restart` ones host by host, the others one by one. In their order.
        With `force`, an instance already at its revision is deployed again."""
        if not instances:
            return []
        if self.cancelled is not None and kind is DeploymentKind.DEPLOY:  # rollbacks still run
            why = f"cancelled: {self.cancelled}"
            return [
                self.finished(i, Outcome(i.name, "skipped", i.revision, why), rollout_id)
                for i in instances
            ]
        chosen = {i.name: (ids or {}).get(i.name) or str(uuid.uuid4()) for i in instances}
        ours = {chosen[i.name] for i in instances if not (ids or {}).get(i.name)}
        async with self.lease.held():
            ran = await self._begin_and_run(
                instances, chosen, ours, limit, rollout_id, kind, force=force
            )
        return [ran[i.name] for i in instances]

    async def _begin_and_run(
        self,
        instances: Sequence[Instance],
        chosen: dict[str, str],
        ours: set[str],
        limit: asyncio.Semaphore,
        rollout_id: str | None,
        kind: DeploymentKind,
        *,
        force: bool,
    ) -> dict[str, Outcome]:
        """`ours`: the ids made up here, so a known one is this call's own begin, retried after
        the store committed it but the answer was lost."""
        requests = [
            DeploymentRequest(
                chosen[i.name],
                i.name,
                i.service,
                i.host,
                i.site,
                i.revision,
                rollout_id,
                kind,
                force=force,
            )
            for i in instances
        ]
        try:
            self.lease.check()
        except LeaseLost as lost:  # nothing ran on a host, nothing is begun in the store
            why = self.masker(f"not begun: {lost}")
            return {
                i.name: self.finished(i, Outcome(i.name, "skipped", i.revision, why), rollout_id)
                for i in instances
            }
        try:
            answers = await self._patiently(
                lambda: self.store.begin_deployments(
                    requests,
                    actor=self.actor,
                    owner_host=self.controller.host,
                    owner_pid=self.controller.pid,
                    controller_id=self.controller.id,
                )
            )
        except StoreError as failure:  # nothing ran on a host
            why = self.masker(f"not begun: {failure}")
            return {
                i.name: self.finished(i, Outcome(i.name, "failed", i.revision, why), rollout_id)
                for i in instances
            }
        outcomes: dict[str, Outcome] = {}
        ready: list[Instance] = []
        for instance, answer in zip(instances, answers, strict=True):
            if isinstance(answer, ConcurrentDeployment | LifecycleRefused):
                outcome = Outcome(
                    instance.name, "rejected", instance.revision, self.masker(str(answer))
                )
            elif isinstance(answer, AlreadyDeployed):  # a rival deployed it since we looked
                outcome = Outcome(
                    instance.name, "unchanged", instance.revision, str(answer),
                    answer.deployment_id,
                )  # fmt: skip
            elif not answer.created and not (
                answer.deployment.id in ours and answer.deployment.status.active
            ):
                did = answer.deployment
                outcome = Outcome(
                    instance.name,
                    "unchanged",
                    instance.revision,
                    f"deployment {did.id} was already applied ({did.status.value})",
                    did.id,
                )
            else:
                ready.append(instance)
                continue
            outcomes[instance.name] = self.finished(instance, outcome, rollout_id)
        running = [chosen[i.name] for i in ready]
        self._active.update(running)
        try:
            if running:
                try:
                    await self._patiently(lambda: self.store.mark_in_progress_many(running))
                except StoreError as failure:
                    why = self.masker(f"not started: {failure}")
                    await self._record([Finish(d, DeploymentStatus.FAILED, why) for d in running])
                    for i in ready:
                        outcome = Outcome(i.name, "failed", i.revision, why, chosen[i.name])
                        outcomes[i.name] = self.finished(i, outcome, rollout_id)
                    return outcomes
            together: dict[str, list[Instance]] = {}
            alone: list[Instance] = []
            for instance in ready:
                if instance.strategy.uses_slots and not kind.lifecycle:
                    alone.append(instance)
                else:
                    together.setdefault(instance.host, []).append(instance)
            work: list[Awaitable[list[Outcome]]]
            if kind in (DeploymentKind.DISABLE, DeploymentKind.DELETE):
                work = [
                    self._take_down(host, group, chosen, limit, rollout_id, kind)
                    for host, group in together.items()
                ]
            else:
                # A rollback or an enable starts the release that is there already.
                upload = kind not in (DeploymentKind.ROLLBACK, DeploymentKind.ENABLE)
                work = [
                    *(
                        self._on_host(host, group, chosen, limit, rollout_id, upload=upload)
                        for host, group in together.items()
                    ),
                    *(self._one(i, chosen[i.name], kind, limit, rollout_id) for i in alone),
                ]
            # Every host's steps run to their end, whatever happens to the others.
            ran = await asyncio.gather(*work, return_exceptions=True)
        finally:
            self._active.difference_update(running)
        for found in ran:
            if isinstance(found, BaseException):
                raise found
            outcomes.update({o.instance: o for o in found})
        return outcomes

    async def _on_host(
        self,
        host: str,
        instances: list[Instance],
        ids: dict[str, str],
        limit: asyncio.Semaphore,
        rollout_id: str | None,
        *,
        upload: bool,
    ) -> list[Outcome]:
        """The `restart` deployments (or rollbacks, `upload` False) on one host, step by step
        together (see HostGroup)."""
        async with limit:
            started = time.monotonic()
            members = [Member(self.release(i), ids[i.name], upload=upload) for i in instances]
            by_name = {i.name: i for i in instances}

            def say(name: str, phase: Phase) -> None:
                self.say(by_name[name], phase, rollout_id, ids[name])

            group = HostGroup(
                self.executor(host), members, say, fence=self.lease.check,
                stop=(lambda: self.cancelled) if upload else lambda: None, logs=self.logs,
                epoch=lambda: (self.lease.epoch, self.lease.store_id),
            )  # fmt: skip
            try:
                await group.deploy(at=utc_now())
            except LeaseLost as lost:
                return await self._lost(
                    [(i, m.deployment_id) for i, m in zip(instances, members, strict=True)],
                    lost,
                    started,
                    rollout_id,
                )
            except BaseException as crash:  # cancelled or a bug: never leave rows in flight
                why = self.masker(interruption(crash))
                await self._record_once(
                    [Finish(m.deployment_id, DeploymentStatus.FAILED, why) for m in members]
                )
                raise
            for m in members:
                if m.failure is not None:
                    m.failure = self.masker(m.failure)
            skipped = [(i, m) for i, m in zip(instances, members, strict=True) if m.skipped]
            outcomes = await self._skipped([(i, m.deployment_id) for i, m in skipped], rollout_id)
            finishes = []
            for i, m in zip(instances, members, strict=True):
                if m.skipped:
                    continue
                if m.failure is None:
                    finishes.append(
                        Finish(
                            m.deployment_id,
                            DeploymentStatus.SUCCESS,
                            snapshot=i.config,
                            secrets=i.secrets,
                        )
                    )
                else:
                    finishes.append(Finish(m.deployment_id, DeploymentStatus.FAILED, m.failure))
            refused = await self._record(finishes)
            seconds = time.monotonic() - started
            for i, m in zip(instances, members, strict=True):
                if m.skipped:
                    continue
                outcome = Outcome(
                    i.name,
                    "success" if m.failure is None else "failed",
                    i.revision,
                    m.failure or "",
                    m.deployment_id,
                    seconds,
                )
                outcome = _unrecorded(outcome, refused.get(m.deployment_id))
                outcomes.append(self.finished(i, outcome, rollout_id))
            return outcomes

    async def _take_down(
        self,
        host: str,
        instances: list[Instance],
        ids: dict[str, str],
        limit: asyncio.Semaphore,
        rollout_id: str | None,
        kind: DeploymentKind,
    ) -> list[Outcome]:
        """Disable or delete the instances on one host in one round trip (deploy.lifecycle)."""
        async with limit:
            started = time.monotonic()
            phase = Phase.DISABLING if kind is DeploymentKind.DISABLE else Phase.DELETING
            for i in instances:
                self.say(i, phase, rollout_id, ids[i.name])
            releases = [self.release(i) for i in instances]
            answers = await lifecycle.take_down(
                self.executor(host), releases, delete=kind is DeploymentKind.DELETE
            )
            failures = {a.name: a.failure and self.masker(a.failure) for a in answers}
            finishes = [
                Finish(ids[i.name], DeploymentStatus.SUCCESS)
                if failures[i.name] is None
                else Finish(ids[i.name], DeploymentStatus.FAILED, failures[i.name])
                for i in instances
            ]
            refused = await self._record(finishes)
            seconds = time.monotonic() - started
            outcomes = []
            for i in instances:
                why = failures[i.name]
                outcome = Outcome(
                    i.name, "failed" if why else "success", i.revision, why or "", ids[i.name],
                    seconds,
                )  # fmt: skip
                outcome = _unrecorded(outcome, refused.get(ids[i.name]))
                outcomes.append(self.finished(i, outcome, rollout_id))
            return outcomes

    async def _skipped(
        self, stopped: list[tuple[Instance, str]], rollout_id: str | None
    ) -> list[Outcome]:
        """Deployments stopped by `cancel` before anything live changed: recorded as skipped
        (the instance stays as it was), reported as skipped."""
        if not stopped:
            return []
        why = f"cancelled: {self.cancelled}"

        def record() -> None:
            for _, deployment_id in stopped:
                with contextlib.suppress(NotActive):
                    self.store.finish_deployment(
                        deployment_id, status=DeploymentStatus.SKIPPED, error=why
                    )

        with contextlib.suppress(StoreError):  # left to recovery: nothing ran
            await self._patiently(record)
        return [
            self.finished(i, Outcome(i.name, "skipped", i.revision, why, d), rollout_id)
            for i, d in stopped
        ]

    async def _patiently(self, call: Callable[[], T]) -> T:
        return await patiently(call, patience=self.policy.patience)

    async def _record(self, finishes: list[Finish]) -> dict[str, str]:
        """Record outcomes, retrying while the store is unavailable; returns why, for each
        deployment whose outcome the store refused or could not take."""
        try:
            return await self._patiently(lambda: self._finish_all(finishes))
        except StoreError as failure:
            return {f.deployment_id: str(failure) for f in finishes}

    async def _record_once(self, finishes: list[Finish]) -> None:
        """One attempt, for a task being cancelled: what fails is left to recovery."""
        with contextlib.suppress(StoreError):
            await asyncio.to_thread(self._finish_all, finishes)

    def _finish_all(self, finishes: list[Finish]) -> dict[str, str]:
        """Record outcomes in one transaction; if one of them is no longer active (recovery
        marked it interrupted meanwhile), the others one by one. Returns why, for each that the
        store refused."""
        try:
            self.store.finish_deployments(finishes)
            return {}
        except (NotActive, StoreConflict):
            pass
        refused = {}
        for f in finishes:
            try:
                self.store.finish_deployment(
                    f.deployment_id,
                    status=f.status,
                    error=f.error,
                    snapshot=f.snapshot,
                    secrets=f.secrets,
                )
            except NotActive as gone:
                if gone.status != f.status.value:  # the same outcome: an earlier try took it
                    refused[f.deployment_id] = f"the store refused it: {gone}"
        return refused

    async def _lost(
        self,
        lost: list[tuple[Instance, str]],
        why: LeaseLost,
        started: float,
        rollout_id: str | None,
    ) -> list[Outcome]:
        """Deployments stopped by the fence: recorded as failed if the store still takes it,
        reported as lost in any case (the host may be between two steps)."""
        reason = f"lost: {why}"
        await self._record([Finish(d, DeploymentStatus.FAILED, reason) for _, d in lost])
        seconds = time.monotonic() - started
        return [
            self.finished(i, Outcome(i.name, "lost", i.revision, reason, d, seconds), rollout_id)
            for i, d in lost
        ]

    async def _one(
        self,
        instance: Instance,
        deployment_id: str,
        kind: DeploymentKind,
        limit: asyncio.Semaphore,
        rollout_id: str | None,
    ) -> list[Outcome]:
        """A blue/green switch (or switch back) of one instance, recorded."""
        async with limit:
            started = time.monotonic()
            drain: Drain | None = None
            try:
                executor = Logged(self.executor(instance.host), self.logs, deployment_id)
                target = self.release(instance)
                rolling_back = kind is DeploymentKind.ROLLBACK

                def fence() -> None:  # before each host step that changes nothing live yet
                    self.lease.check()
                    if self.cancelled is not None and not rolling_back:
                        raise Cancelled(self.cancelled)

                fence()
                phase = Phase.SWITCHING if rolling_back else Phase.UPLOADING
                self.say(instance, phase, rollout_id, deployment_id)
                switch = await BlueGreen(executor, target).deploy(
                    upload=not rolling_back, fence=fence
                )
                drain = switch.drain
                self.lease.check()
                await finish_on_host(
                    executor, target, deployment_id=deployment_id, at=utc_now(), slot=switch.live
                )
            except LeaseLost as lost:
                return await self._lost([(instance, deployment_id)], lost, started, rollout_id)
            except Cancelled:
                return await self._skipped([(instance, deployment_id)], rollout_id)
            except (DeployError, ExecutionError) as failure:
                reason = self.masker(_reason(failure))
                failed = Finish(deployment_id, DeploymentStatus.FAILED, reason)
                refused = await self._record([failed])
                seconds = time.monotonic() - started
                outcome = Outcome(
                    instance.name, "failed", instance.revision, reason, deployment_id, seconds
                )
                outcome = _unrecorded(outcome, refused.get(deployment_id))
                return [self.finished(instance, outcome, rollout_id)]
            except BaseException as crash:  # cancelled or a bug: never leave the row in flight
                why = self.masker(interruption(crash))
                await self._record_once([Finish(deployment_id, DeploymentStatus.FAILED, why)])
                raise
            done = Finish(
                deployment_id,
                DeploymentStatus.SUCCESS,
                snapshot=instance.config,
                secrets=instance.secrets,
            )
            refused = await self._record([done])
            if drain is not None:  # after the deployment is recorded: a next switch may queue
                self.say(instance, Phase.DRAINING, rollout_id, deployment_id)
                await drain()
            seconds = time.monotonic() - started
            outcome = Outcome(
                instance.name, "success", instance.revision, "", deployment_id, seconds
            )
            outcome = _unrecorded(outcome, refused.get(deployment_id))
            return [self.finished(instance, outcome, rollout_id)]


def _unrecorded(outcome: Outcome, why: str | None) -> Outcome:
    """The outcome as reported: lost, when the store did not take it (never a success)."""
    if why is None:
        return outcome
    did = "deployed on the host" if outcome.result == "success" else "failed on the host"
    reason = f"{did}, but the result is not recorded: {why}"
    if outcome.reason:
        reason += f" (host: {outcome.reason.splitlines()[0]})"
    return replace(outcome, result="lost", reason=reason)


def _reason(failure: BaseException) -> str:
    text = str(failure)
    notes = getattr(failure, "__notes__", None)
    if notes:
        text += "\n" + "\n".join(notes)
    return text


def interruption(crash: BaseException) -> str:
    """Why a deployment stopped half-way: the reason a cancellation was given (a server's
    shutdown), else the exception."""
    if isinstance(crash, asyncio.CancelledError) and crash.args:
        return f"interrupted: {crash.args[0]}"
    return f"interrupted: {type(crash).__name__}: {crash}"
