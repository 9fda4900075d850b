"""Rollouts: deployments in dependency waves, a wave's instances in parallel, all recorded.

The store enforces one deployment in flight per instance; when an instance fails, instances of
the services that depend on its service are skipped with the reason, and the rest go on.
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
from shipyard.config.graph import dependents
from shipyard.config.models import Strategy
from shipyard.config.topology import HostRef, all_hosts
from shipyard.deploy.batches import plan_batches
from shipyard.deploy.bluegreen import BlueGreen, Drain
from shipyard.deploy.hostgroup import HostGroup, Member
from shipyard.deploy.hostops import wait_healthy
from shipyard.deploy.instance import Release, finish_on_host, rollback_release
from shipyard.errors import (
    ConcurrentDeployment,
    DeployError,
    ExecutionError,
    NotActive,
    StoreConflict,
)
from shipyard.executors.base import Executor
from shipyard.plan.rollout import Target, make_plan
from shipyard.store import (
    DeploymentKind,
    DeploymentRequest,
    DeploymentStatus,
    Finish,
    InstanceState,
    RolloutStatus,
    Store,
    utc_now,
)

Result = Literal["success", "failed", "skipped", "unchanged", "rejected", "planned"]
HEARTBEAT_SECONDS = 10.0


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
class RolloutReport:
    rollout_id: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result in ("failed", "rejected")]

    @property
    def ok(self) -> bool:
        return not self.failed and not any(o.result == "skipped" for o in self.outcomes)


Progress = Callable[[str, str], None]  # (instance, what is happening)
Connect = Callable[[HostRef], Executor]


@dataclass
class Deployer:
    """Runs rollouts of a flattened project against its hosts, recording everything in `store`."""

    flat: Flattened
    store: Store
    connect: Connect
    actor: str
    max_in_flight: int = 200
    progress: Progress = lambda instance, what: None
    _executors: dict[str, Executor] = field(default_factory=dict)
    _active: set[str] = field(default_factory=set)

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

    async def deploy(
        self, instances: Sequence[Instance], *, request: str, dry_run: bool = False
    ) -> RolloutReport:
        """Deploy what is stale among `instances`, in dependency waves."""
        deployed = {s.name: s.deployed.revision for s in self.store.instance_states() if s.deployed}
        targets = [Target(i.name, i.service, i.host, i.site, i.revision) for i in instances]
        plan = make_plan(targets, self.flat.service_edges(), deployed, self.flat.instances)
        report = RolloutReport(rollout_id=str(uuid.uuid4()))
        if dry_run:
            for step in plan.steps:
                result: Result = "planned" if step.stale else "unchanged"
                report.outcomes.append(Outcome(step.name, result, step.revision, step.action))
            return report
        self.store.begin_rollout(
            rollout_id=report.rollout_id, actor=self.actor, request=request, strategy="restart"
        )
        failed_services: set[str] = set()
        limit = asyncio.Semaphore(self.max_in_flight)
        beat = asyncio.create_task(self._heartbeat())
        try:
            for wave in plan.waves:
                blocked = dependents(self.flat.service_edges(), failed_services)
                stale: dict[str, list[Instance]] = {}
                for step in wave:
                    if step.service in blocked:
                        why = _blocked_reason(step.service, failed_services, self.flat)
                        report.outcomes.append(Outcome(step.name, "skipped", step.revision, why))
                        self.progress(step.name, "skipped")
                    elif not step.stale:
                        report.outcomes.append(
                            Outcome(step.name, "unchanged", step.revision, "up to date")
                        )
                        self.progress(step.name, "unchanged")
                    else:
                        instance = self.flat.instances[step.name]
                        stale.setdefault(step.service, []).append(instance)
                # Services deployed in one batch go together, so each host gets one round trip
                # per step for all of them; rolling and canary services keep their own pace.
                together = {s: g for s, g in stale.items() if _one_batch(g)}
                apart = [g for s, g in stale.items() if s not in together]
                joint, separate = await asyncio.gather(
                    self._roll_together(together, limit, report.rollout_id),
                    asyncio.gather(
                        *(self._roll_service(group, limit, report.rollout_id) for group in apart)
                    ),
                )
                services = [*together, *(group[0].service for group in apart)]
                rolled = [*joint, *separate]
                for service, (outcomes, stopped) in zip(services, rolled, strict=True):
                    report.outcomes.extend(outcomes)
                    if stopped:
                        failed_services.add(service)
        finally:
            beat.cancel()
            await self.close()
        self.store.finish_rollout(
            report.rollout_id,
            status=RolloutStatus.SUCCESS if report.ok else RolloutStatus.FAILED,
            summary=_summary(report),
        )
        return report

    async def _roll_together(
        self, groups: dict[str, list[Instance]], limit: asyncio.Semaphore, rollout: str
    ) -> list[tuple[list[Outcome], bool]]:
        """Services of one batch each, deployed at once; per service, whether it stopped."""
        everything = [i for group in groups.values() for i in group]
        done = {o.instance: o for o in await self._deploy_many(everything, limit, rollout)}
        rolled = []
        for group in groups.values():
            outcomes = [done[i.name] for i in group]
            strategy = Strategy.model_validate(group[0].config.get("strategy", {}))
            batches = plan_batches([i.name for i in group], strategy)
            failures = sum(o.result in ("failed", "rejected") for o in outcomes)
            rolled.append((outcomes, batches.exceeded(failures)))
        return rolled

    async def _roll_service(
        self, instances: list[Instance], limit: asyncio.Semaphore, rollout: str
    ) -> tuple[list[Outcome], bool]:
        """One service's stale instances under its strategy; True when the service stopped."""
        strategy = Strategy.model_validate(instances[0].config.get("strategy", {}))
        by_name = {i.name: i for i in instances}
        batches = plan_batches(list(by_name), strategy)
        before = {i.name: self.store.instance_state(i.name) for i in instances}
        outcomes: list[Outcome] = []
        failures = 0
        stop = ""
        for index, batch in enumerate(batches.batches):
            if stop:
                for name in batch:
                    outcomes.append(Outcome(name, "skipped", by_name[name].revision, stop))
                    self.progress(name, "skipped")
                continue
            if index and strategy.pause:
                await asyncio.sleep(strategy.pause)
            done = await self._deploy_many([by_name[name] for name in batch], limit, rollout)
            outcomes.extend(done)
            failures += sum(o.result in ("failed", "rejected") for o in done)
            if batches.exceeded(failures):
                stop = batches.describe_stop(failures)
            elif batches.canary and index == 0:
                healthy = [by_name[o.instance] for o in done if o.result == "success"]
                trouble = "" if len(healthy) == len(done) else "a canary deployment failed"
                trouble = trouble or await self._soak(healthy, strategy)
                if trouble:
                    stop = f"canary failed: {trouble}"
                    undone = await self._roll_back(healthy, before, stop)
                    replaced = {o.instance for o in undone}
                    outcomes = [o for o in outcomes if o.instance not in replaced] + undone
        return outcomes, bool(stop)

    async def _soak(self, canaries: list[Instance], strategy: Strategy) -> str:
        """Keep checking the canaries' health for `soak` seconds; the reason if one fails."""
        deadline = time.monotonic() + strategy.soak
        while True:
            for instance in canaries:
                self.progress(instance.name, "soaking")
                health = await wait_healthy(
                    self.executor(instance.host), self.release(instance).health
                )
                if not health.healthy:
                    return f"{instance.name}: {health.detail}"
            if time.monotonic() >= deadline:
                return ""
            interval = self.release(canaries[0]).health
            await asyncio.sleep(min(max(interval.interval if interval else 1.0, 0.2), 5.0))

    async def _roll_back(
        self, instances: list[Instance], before: dict[str, InstanceState | None], why: str
    ) -> list[Outcome]:
        """Put the releases deployed before the canary back; instances new to it are stopped."""
        out = []
        for instance in instances:
            state = before.get(instance.name)
            snapshot = state.deployed if state is not None else None
            if snapshot is None:
                continue  # nothing ran there before: its failed release stays stopped
            old = instance.as_deployed(snapshot.revision, snapshot.config, snapshot.secrets)
            outcome = await self.deploy_one(old, kind=DeploymentKind.ROLLBACK)
            out.append(
                Outcome(
                    instance.name,
                    "failed" if outcome.result == "success" else outcome.result,
                    instance.revision,
                    f"rolled back to {snapshot.revision[:12]}: {why}",
                    outcome.deployment_id,
                    outcome.seconds,
                )
            )
        return out

    async def deploy_one(
        self,
        instance: Instance,
        *,
        rollout_id: str | None = None,
        deployment_id: str | None = None,
        kind: DeploymentKind = DeploymentKind.DEPLOY,
    ) -> Outcome:
        """One deployment: a row in the store, the release on the host, the outcome recorded."""
        limit = asyncio.Semaphore(1)
        ids = {instance.name: deployment_id} if deployment_id else {}
        return (await self._deploy_many([instance], limit, rollout_id, kind=kind, ids=ids))[0]

    async def _deploy_many(
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
                if kind is DeploymentKind.DEPLOY and not self.release(instance).strategy.uses_slots:
                    together.setdefault(instance.host, []).append(instance)
                else:
                    alone.append(instance)
            ran = await asyncio.gather(
                *(self._on_host(host, group, chosen, limit) for host, group in together.items()),
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
    ) -> list[Outcome]:
        """The `restart` deployments on one host, step by step together (see HostGroup)."""
        async with limit:
            started = time.monotonic()
            members = [Member(self.release(i), ids[i.name]) for i in instances]
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
        """A blue/green switch or a rollback of one instance, recorded."""
        async with limit:
            started = time.monotonic()
            drain: Drain | None = None
            try:
                self.progress(instance.name, "deploying")
                executor = self.executor(instance.host)
                target = self.release(instance)
                rolling_back = kind is DeploymentKind.ROLLBACK
                if target.strategy.uses_slots:
                    switch = await BlueGreen(executor, target).deploy(upload=not rolling_back)
                    drain = switch.drain
                    await finish_on_host(
                        executor,
                        target,
                        deployment_id=deployment_id,
                        at=utc_now(),
                        slot=switch.live,
                    )
                else:
                    await rollback_release(
                        executor, target, deployment_id=deployment_id, at=utc_now()
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

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if self._active:
                await asyncio.to_thread(self.store.heartbeat, list(self._active))


def _one_batch(instances: list[Instance]) -> bool:
    """True when the service's strategy deploys all its instances at once (restart, blue-green)."""
    strategy = Strategy.model_validate(instances[0].config.get("strategy", {}))
    batches = plan_batches([i.name for i in instances], strategy)
    return not batches.canary and len(batches.batches) <= 1


def _this_host() -> str:
    from shipyard.store import this_host

    return this_host()


def _reason(failure: BaseException) -> str:
    text = str(failure)
    notes = getattr(failure, "__notes__", None)
    if notes:
        text += "\n" + "\n".join(notes)
    return text


def _blocked_reason(service: str, failed: set[str], flat: Flattened) -> str:
    edges = flat.service_edges()
    causes = sorted(f for f in failed if service in dependents(edges, {f}))
    return f"depends on {', '.join(causes)}, which failed"


def _summary(report: RolloutReport) -> dict[str, object]:
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return {"counts": counts, "failed": [o.instance for o in report.failed]}
