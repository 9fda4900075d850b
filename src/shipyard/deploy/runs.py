"""Deployments begun in the store, run on their hosts and recorded: many at once.

The `restart` deployments of one host go together (HostGroup: one round trip per step for all
of them); blue/green switches and rollbacks run one by one. The store sees batches: one
transaction to begin them all, one to start them, one per host to record the outcomes.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from shipyard.config.flatten import Flattened, Instance
from shipyard.config.models import Strategy
from shipyard.config.topology import HostRef, all_hosts
from shipyard.deploy.bluegreen import BlueGreen, Drain
from shipyard.deploy.hostgroup import HostGroup, Member
from shipyard.deploy.instance import Release, finish_on_host
from shipyard.errors import (
    AlreadyDeployed,
    ConcurrentDeployment,
    DeployError,
    ExecutionError,
    NotActive,
    StoreConflict,
)
from shipyard.executors.base import Executor
from shipyard.store import (
    DeploymentKind,
    DeploymentRequest,
    DeploymentStatus,
    Finish,
    Store,
    utc_now,
)

Result = Literal["success", "failed", "skipped", "unchanged", "rejected", "planned"]
Progress = Callable[[str, str], None]  # (instance, what is happening)
Connect = Callable[[HostRef], Executor]


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
    progress: Progress
    _executors: dict[str, Executor] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)

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
        return Release(instance, self.flat.realise(instance), ref, self.flat.loaded.root)

    async def deploy_many(
        self,
        instances: Sequence[Instance],
        limit: asyncio.Semaphore,
        rollout_id: str | None,
        *,
        kind: DeploymentKind = DeploymentKind.DEPLOY,
        ids: dict[str, str] | None = None,
    ) -> list[Outcome]:
        """Deployments of `instances` (one each), begun and recorded in batches, run in
        parallel: the `restart` ones host by host, the others one by one. In their order."""
        if not instances:
            return []
        chosen = {i.name: (ids or {}).get(i.name) or str(uuid.uuid4()) for i in instances}
        requests = [
            DeploymentRequest(
                chosen[i.name], i.name, i.service, i.host, i.site, i.revision, rollout_id, kind
            )
            for i in instances
        ]
        answers = await asyncio.to_thread(
            self.store.begin_deployments,
            requests,
            actor=self.actor,
            owner_host=_this_host(),
            owner_pid=os.getpid(),
        )
        outcomes: dict[str, Outcome] = {}
        ready: list[Instance] = []
        for instance, answer in zip(instances, answers, strict=True):
            if isinstance(answer, ConcurrentDeployment):
                self.progress(instance.name, "rejected")
                outcomes[instance.name] = Outcome(
                    instance.name, "rejected", instance.revision, str(answer)
                )
            elif isinstance(answer, AlreadyDeployed):  # a rival deployed it since we looked
                self.progress(instance.name, "unchanged")
                outcomes[instance.name] = Outcome(
                    instance.name, "unchanged", instance.revision, str(answer),
                    answer.deployment_id,
                )  # fmt: skip
            elif not answer.created:
                did = answer.deployment
                outcomes[instance.name] = Outcome(
                    instance.name,
                    "unchanged",
                    instance.revision,
                    f"deployment {did.id} was already applied ({did.status.value})",
                    did.id,
                )
            else:
                ready.append(instance)
        running = [chosen[i.name] for i in ready]
        if running:
            await asyncio.to_thread(self.store.mark_in_progress_many, running)
        self._active.update(running)
        try:
            together: dict[str, list[Instance]] = {}
            alone: list[Instance] = []
            for instance in ready:
                # The strategy holds no secret: read it without realising the config.
                strategy = Strategy.model_validate(instance.config.get("strategy", {}))
                if strategy.uses_slots:
                    alone.append(instance)
                else:
                    together.setdefault(instance.host, []).append(instance)
            upload = kind is not DeploymentKind.ROLLBACK
            ran = await asyncio.gather(
                *(
                    self._on_host(host, group, chosen, limit, upload=upload)
                    for host, group in together.items()
                ),
                *(self._one(i, chosen[i.name], kind, limit) for i in alone),
            )
        finally:
            self._active.difference_update(running)
        for found in ran:
            outcomes.update({o.instance: o for o in found})
        return [outcomes[i.name] for i in instances]

    async def _on_host(
        self,
        host: str,
        instances: list[Instance],
        ids: dict[str, str],
        limit: asyncio.Semaphore,
        *,
        upload: bool,
    ) -> list[Outcome]:
        """The `restart` deployments (or rollbacks, `upload` False) on one host, step by step
        together (see HostGroup)."""
        async with limit:
            started = time.monotonic()
            members = [Member(self.release(i), ids[i.name], upload=upload) for i in instances]
            for i in instances:
                self.progress(i.name, "deploying")
            try:
                await HostGroup(self.executor(host), members, self.progress).deploy(at=utc_now())
            except BaseException as crash:  # cancelled or a bug: never leave rows in flight
                why = f"interrupted: {type(crash).__name__}: {crash}"
                failed = [Finish(m.deployment_id, DeploymentStatus.FAILED, why) for m in members]
                await asyncio.to_thread(self._finish_all, failed)
                raise
            finishes = []
            for i, m in zip(instances, members, strict=True):
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
            await asyncio.to_thread(self._finish_all, finishes)
            seconds = time.monotonic() - started
            outcomes = []
            for i, m in zip(instances, members, strict=True):
                result: Result = "success" if m.failure is None else "failed"
                self.progress(i.name, result)
                outcomes.append(
                    Outcome(i.name, result, i.revision, m.failure or "", m.deployment_id, seconds)
                )
            return outcomes

    def _finish_all(self, finishes: list[Finish]) -> None:
        """Record outcomes in one transaction; if one of them is no longer active (recovery
        marked it interrupted meanwhile), record the others one by one."""
        try:
            self.store.finish_deployments(finishes)
        except (NotActive, StoreConflict):
            for f in finishes:
                try:
                    self.store.finish_deployment(
                        f.deployment_id,
                        status=f.status,
                        error=f.error,
                        snapshot=f.snapshot,
                        secrets=f.secrets,
                    )
                except NotActive:
                    continue

    async def _one(
        self,
        instance: Instance,
        deployment_id: str,
        kind: DeploymentKind,
        limit: asyncio.Semaphore,
    ) -> list[Outcome]:
        """A blue/green switch (or switch back) of one instance, recorded."""
        async with limit:
            started = time.monotonic()
            drain: Drain | None = None
            try:
                self.progress(instance.name, "deploying")
                executor = self.executor(instance.host)
                target = self.release(instance)
                rolling_back = kind is DeploymentKind.ROLLBACK
                switch = await BlueGreen(executor, target).deploy(upload=not rolling_back)
                drain = switch.drain
                await finish_on_host(
                    executor, target, deployment_id=deployment_id, at=utc_now(), slot=switch.live
                )
            except (DeployError, ExecutionError) as failure:
                reason = _reason(failure)
                failed = Finish(deployment_id, DeploymentStatus.FAILED, reason)
                await asyncio.to_thread(self._finish_all, [failed])
                self.progress(instance.name, "failed")
                seconds = time.monotonic() - started
                return [
                    Outcome(
                        instance.name, "failed", instance.revision, reason, deployment_id, seconds
                    )
                ]
            except BaseException as crash:  # cancelled or a bug: never leave the row in flight
                why = f"interrupted: {type(crash).__name__}: {crash}"
                failed = Finish(deployment_id, DeploymentStatus.FAILED, why)
                await asyncio.to_thread(self._finish_all, [failed])
                raise
            done = Finish(
                deployment_id,
                DeploymentStatus.SUCCESS,
                snapshot=instance.config,
                secrets=instance.secrets,
            )
            await asyncio.to_thread(self._finish_all, [done])
            if drain is not None:  # after the deployment is recorded: a next switch may queue
                self.progress(instance.name, "draining")
                await drain()
            self.progress(instance.name, "success")
            seconds = time.monotonic() - started
            return [
                Outcome(instance.name, "success", instance.revision, "", deployment_id, seconds)
            ]


def _this_host() -> str:
    from shipyard.store import this_host

    return this_host()


def _reason(failure: BaseException) -> str:
    text = str(failure)
    notes = getattr(failure, "__notes__", None)
    if notes:
        text += "\n" + "\n".join(notes)
    return text
