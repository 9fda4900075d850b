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
from shipyard.deploy.hostops import wait_healthy
from shipyard.deploy.instance import Release, deploy_release, finish_on_host, rollback_release
from shipyard.errors import ConcurrentDeployment, DeployError, ExecutionError
from shipyard.executors.base import Executor
from shipyard.plan.rollout import Target, make_plan
from shipyard.store import (
    DeploymentKind,
    DeploymentStatus,
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
                rolled = await asyncio.gather(
                    *(
                        self._roll_service(group, limit, report.rollout_id)
                        for group in stale.values()
                    )
                )
                for service, (outcomes, stopped) in zip(stale, rolled, strict=True):
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

    async def _guarded(self, limit: asyncio.Semaphore, instance: Instance, rollout: str) -> Outcome:
        async with limit:
            return await self.deploy_one(instance, rollout_id=rollout)

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
            done = await asyncio.gather(
                *(self._guarded(limit, by_name[name], rollout) for name in batch)
            )
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
        started = time.monotonic()
        deployment_id = deployment_id or str(uuid.uuid4())
        drain: Drain | None = None
        try:
            began = await asyncio.to_thread(
                self.store.begin_deployment,
                deployment_id=deployment_id,
                instance=instance.name,
                service=instance.service,
                host=instance.host,
                site=instance.site,
                revision=instance.revision,
                actor=self.actor,
                owner_host=_this_host(),
                owner_pid=os.getpid(),
                rollout_id=rollout_id,
                kind=kind,
            )
        except ConcurrentDeployment as busy:
            self.progress(instance.name, "rejected")
            return Outcome(instance.name, "rejected", instance.revision, str(busy))
        if not began.created:
            done = began.deployment
            return Outcome(
                instance.name,
                "unchanged",
                instance.revision,
                f"deployment {deployment_id} was already applied ({done.status.value})",
                deployment_id,
            )
        self._active.add(deployment_id)
        try:
            await asyncio.to_thread(self.store.mark_in_progress, deployment_id)
            self.progress(instance.name, "deploying")
            executor = self.executor(instance.host)
            target = self.release(instance)
            rolling_back = kind is DeploymentKind.ROLLBACK
            if target.strategy.uses_slots:
                switch = await BlueGreen(executor, target).deploy(upload=not rolling_back)
                drain = switch.drain
                await finish_on_host(
                    executor, target, deployment_id=deployment_id, at=utc_now(), slot=switch.live
                )
            elif rolling_back:
                await rollback_release(executor, target, deployment_id=deployment_id, at=utc_now())
            else:
                await deploy_release(executor, target, deployment_id=deployment_id, at=utc_now())
        except (DeployError, ExecutionError) as failure:
            reason = _reason(failure)
            await asyncio.to_thread(
                self.store.finish_deployment,
                deployment_id,
                status=DeploymentStatus.FAILED,
                error=reason,
            )
            self.progress(instance.name, "failed")
            return Outcome(
                instance.name,
                "failed",
                instance.revision,
                reason,
                deployment_id,
                time.monotonic() - started,
            )
        except BaseException as crash:  # cancelled or a bug: never leave the row in flight
            await asyncio.to_thread(
                self.store.finish_deployment,
                deployment_id,
                status=DeploymentStatus.FAILED,
                error=f"interrupted: {type(crash).__name__}: {crash}",
            )
            raise
        finally:
            self._active.discard(deployment_id)
        await asyncio.to_thread(
            self.store.finish_deployment,
            deployment_id,
            status=DeploymentStatus.SUCCESS,
            snapshot=instance.config,
            secrets=instance.secrets,
        )
        if drain is not None:  # after the deployment is recorded: a next switch may queue behind
            self.progress(instance.name, "draining")
            await drain()
        self.progress(instance.name, "success")
        return Outcome(
            instance.name,
            "success",
            instance.revision,
            "",
            deployment_id,
            time.monotonic() - started,
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if self._active:
                await asyncio.to_thread(self.store.heartbeat, list(self._active))


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
