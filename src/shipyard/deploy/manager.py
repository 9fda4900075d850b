"""Rollouts: deployments in dependency waves, a wave's instances in parallel, all recorded.

The store enforces one deployment in flight per instance; when an instance fails, instances of
the services that depend on its service are skipped with the reason, and the rest go on.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

from shipyard.config.flatten import Flattened, Instance
from shipyard.config.graph import dependents
from shipyard.config.models import Strategy
from shipyard.deploy.batches import plan_batches
from shipyard.deploy.bluegreen import soak_probe
from shipyard.deploy.instance import Release
from shipyard.deploy.runs import Connect, Outcome, Progress, Result, Runs
from shipyard.executors.base import Executor
from shipyard.plan.rollout import Target, make_plan
from shipyard.store import (
    DeploymentKind,
    InstanceState,
    RolloutStatus,
    Store,
)

HEARTBEAT_SECONDS = 10.0


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


@dataclass
class Deployer:
    """Runs rollouts of a flattened project against its hosts, recording everything in `store`."""

    flat: Flattened
    store: Store
    connect: Connect
    actor: str
    max_in_flight: int = 200
    progress: Progress = lambda instance, what: None
    runs: Runs = field(init=False)

    def __post_init__(self) -> None:
        self.runs = Runs(self.flat, self.store, self.connect, self.actor, self.progress)

    def executor(self, host: str) -> Executor:
        return self.runs.executor(host)

    async def close(self) -> None:
        await self.runs.close()

    def release(self, instance: Instance) -> Release:
        return self.runs.release(instance)

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
        done = {o.instance: o for o in await self.runs.deploy_many(everything, limit, rollout)}
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
            done = await self.runs.deploy_many([by_name[name] for name in batch], limit, rollout)
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
        """Keep checking the canaries' health for `soak` seconds, one attempt each time (at the
        live slot's port for blue/green slots); the reason if one fails."""
        deadline = time.monotonic() + strategy.soak
        while True:
            for instance in canaries:
                self.progress(instance.name, "soaking")
                trouble = await soak_probe(self.executor(instance.host), self.release(instance))
                if trouble:
                    return f"{instance.name}: {trouble}"
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
        return (await self.runs.deploy_many([instance], limit, rollout_id, kind=kind, ids=ids))[0]

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            if self.runs.active:
                await asyncio.to_thread(self.store.heartbeat, list(self.runs.active))


def _one_batch(instances: list[Instance]) -> bool:
    """True when the service's strategy deploys all its instances at once (restart, blue-green)."""
    strategy = Strategy.model_validate(instances[0].config.get("strategy", {}))
    batches = plan_batches([i.name for i in instances], strategy)
    return not batches.canary and len(batches.batches) <= 1


def _blocked_reason(service: str, failed: set[str], flat: Flattened) -> str:
    edges = flat.service_edges()
    causes = sorted(f for f in failed if service in dependents(edges, {f}))
    return f"depends on {', '.join(causes)}, which failed"


def _summary(report: RolloutReport) -> dict[str, object]:
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return {"counts": counts, "failed": [o.instance for o in report.failed]}
