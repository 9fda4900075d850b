"""Rollouts: deployments in dependency waves, a wave's instances in parallel, all recorded.

The store enforces one deployment in flight per instance; when an instance fails, instances of
the services that depend on its service are skipped with the reason, and the rest go on.

Every step is published on the deployer's EventBus (shipyard.events): ROLLOUT_STARTED once the
rollouts row is written, QUEUED for each instance of the plan, its phases, its FINISHED,
ROLLOUT_FINISHED last. Every event of a begun deployment carries its id. A canary that failed
its soak finishes more than once: its deployment's FINISHED (success), its rollback's (if it
had a release to go back to), and last the one its report outcome says (failed, with why).
`cancel` stops what has not begun; what did not run is skipped with "cancelled: <reason>". Once
the lease is lost, what did not begin is skipped too, "not begun: <why the lease is lost>".
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import TypeVar

from shipyard.config.flatten import Flattened, Instance
from shipyard.config.graph import dependents
from shipyard.deploy.batches import plan_batches
from shipyard.deploy.canary import Canaries
from shipyard.deploy.instance import Release
from shipyard.deploy.lease import LeasePolicy, patiently
from shipyard.deploy.runs import Connect, Outcome, Result, Runs
from shipyard.errors import LeaseLost, StoreError, StoreUnavailable
from shipyard.events import Event, EventBus, Phase
from shipyard.executors.base import Executor
from shipyard.masking import Masker, masker_for
from shipyard.plan.rollout import Step, Target, make_plan
from shipyard.store import (
    Controller,
    DeploymentKind,
    RolloutStatus,
    Store,
    utc_now,
)

# What a rollout reports as not done: "lost" ran on hosts but is not (or not surely) recorded.
NOT_DONE = ("failed", "rejected", "lost")
T = TypeVar("T")


@dataclass
class RolloutReport:
    rollout_id: str
    outcomes: list[Outcome] = field(default_factory=list)
    cancelled: str | None = None  # the reason, when the rollout was cancelled

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.result in NOT_DONE]

    @property
    def ok(self) -> bool:
        return not self.failed and not any(o.result == "skipped" for o in self.outcomes)


@dataclass
class Deployer:
    """Runs rollouts of a flattened project against its hosts, recording everything in `store`
    and publishing every step on `events` (None: a bus of its own that writes to `store`)."""

    flat: Flattened
    store: Store
    connect: Connect
    actor: str
    _: KW_ONLY
    max_in_flight: int = 200
    events: EventBus | None = None
    # Masks every reason and output before it is recorded or returned; None: the project's own.
    masker: Masker | None = None
    controller: Controller
    policy: LeasePolicy = field(default_factory=LeasePolicy)
    config_version: int | None = None  # the server's config version `flat` came from
    bus: EventBus = field(init=False)
    runs: Runs = field(init=False)
    canaries: Canaries = field(init=False)
    _rollout_id: str | None = field(init=False, default=None)
    _busy: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        masker = self.masker if self.masker is not None else masker_for(self.flat)
        self.bus = self.events if self.events is not None else EventBus(self.store.append_events)
        self.runs = Runs(
            self.flat, self.store, self.connect, self.actor, self.bus, masker,
            controller=self.controller, policy=self.policy,
        )  # fmt: skip
        self.canaries = Canaries(self.runs, self._roll_back_to)

    async def _roll_back_to(self, old: Instance, rollout: str) -> Outcome:
        return await self.deploy_one(old, rollout_id=rollout, kind=DeploymentKind.ROLLBACK)

    def executor(self, host: str) -> Executor:
        return self.runs.executor(host)

    async def close(self) -> None:
        await self.runs.close()

    def release(self, instance: Instance) -> Release:
        return self.runs.release(instance)

    async def deploy(
        self,
        instances: Sequence[Instance],
        *,
        request: str,
        dry_run: bool = False,
        force: bool = False,
        rollout_id: str | None = None,
    ) -> RolloutReport:
        """Deploy what is stale among `instances` (all with `force`), in dependency waves.
        A dry run writes and publishes nothing."""
        async with self._running():
            return await self._deploy(instances, request, dry_run, force, rollout_id)

    async def _deploy(
        self,
        instances: Sequence[Instance],
        request: str,
        dry_run: bool,
        force: bool,
        rollout_id: str | None,
    ) -> RolloutReport:
        states = await asyncio.to_thread(self.store.instance_states)
        deployed = {s.name: s.deployed.revision for s in states if s.deployed}
        # A disabled instance is not stale while disabled (store.lifecycle refuses a forced one).
        revisions = {i.name: i.revision for i in instances}
        disabled = frozenset(
            s.name for s in states if s.lifecycle.value == "disabled" and s.name in revisions
        )
        deployed.update({name: revisions[name] for name in disabled})
        targets = [Target(i.name, i.service, i.host, i.site, i.revision) for i in instances]
        plan = make_plan(targets, self.flat.service_edges(), deployed, self.flat.instances)
        report = RolloutReport(rollout_id=rollout_id or str(uuid.uuid4()))
        if dry_run:
            for step in plan.steps:
                result: Result = "planned" if step.stale or force else "unchanged"
                report.outcomes.append(Outcome(step.name, result, step.revision, step.action))
            return report
        queued = [self.flat.instances[step.name] for step in plan.steps]

        async def waves() -> None:
            await self._run_waves(plan.waves, report, force=force, disabled=disabled)

        return await self._rollout(report, request, "restart", queued, waves)

    async def rollback(
        self, instance: Instance, *, request: str, rollout_id: str | None = None
    ) -> RolloutReport:
        """Switch `instance` (as it was deployed: Instance.as_deployed) back to its kept release,
        as a rollout of its own (strategy "rollback")."""
        report = RolloutReport(rollout_id=rollout_id or str(uuid.uuid4()))

        async def back() -> None:
            halt = self._halt()
            if halt:
                report.outcomes.append(self._skip(instance, halt, report.rollout_id))
                return
            outcome = await self.deploy_one(
                instance, rollout_id=report.rollout_id, kind=DeploymentKind.ROLLBACK
            )
            report.outcomes.append(outcome)

        async with self._running():
            return await self._rollout(report, request, "rollback", [instance], back)

    async def lifecycle(
        self,
        instances: Sequence[Instance],
        kind: DeploymentKind,
        *,
        request: str,
        rollout_id: str | None = None,
    ) -> RolloutReport:
        """Disable, enable or delete `instances` (each as deployed: Instance.as_deployed), as a
        rollout of its own whose strategy is the command; hosts in parallel, each host's
        instances in one round trip."""
        if not kind.lifecycle:
            raise ValueError(f"{kind.value} is not a lifecycle command")
        report = RolloutReport(rollout_id=rollout_id or str(uuid.uuid4()))

        async def run() -> None:
            halt = self._halt()
            if halt:
                report.outcomes.extend(self._skip(i, halt, report.rollout_id) for i in instances)
                return
            limit = asyncio.Semaphore(self.max_in_flight)
            report.outcomes.extend(
                await self.runs.deploy_many(
                    instances, limit, report.rollout_id, kind=kind, force=True
                )
            )

        async with self._running():
            return await self._rollout(report, request, kind.value, instances, run)

    @contextlib.asynccontextmanager
    async def _running(self) -> AsyncIterator[None]:
        """While a rollout runs, `cancel` applies to it; afterwards it applies to nothing."""
        self._busy = True
        try:
            yield
        finally:
            self._busy = False
            self.runs.cancelled = None

    def cancel(self, reason: str) -> None:
        """Stop the rollout running now (call it from any task on its loop): no new wave, batch
        or host step begins, the steps in flight finish; what did not run is skipped. With no
        rollout running it does nothing."""
        if not self._busy or self.runs.cancelled is not None:
            return  # none running, or cancelled already
        self.runs.cancelled = self.runs.masker(reason)
        if self._rollout_id is not None:
            self._tell(Phase.ROLLOUT_CANCELLING, self._rollout_id, detail=self.runs.cancelled)

    async def _rollout(
        self,
        report: RolloutReport,
        request: str,
        strategy: str,
        queued: Sequence[Instance],
        work: Callable[[], Awaitable[None]],
    ) -> RolloutReport:
        """The rollouts row, then `work` between ROLLOUT_STARTED and ROLLOUT_FINISHED."""
        async with self.runs.lease.held():
            await patiently(
                lambda: self.store.begin_rollout(
                    rollout_id=report.rollout_id, actor=self.actor, request=request,
                    strategy=strategy, controller_id=self.controller.id,
                    config_version=self.config_version,
                ),
                patience=self.policy.patience,
            )  # fmt: skip
            self._rollout_id = report.rollout_id
            self._tell(Phase.ROLLOUT_STARTED, report.rollout_id, detail=request)
            if self.runs.cancelled is not None:  # cancelled before the row was written
                why = self.runs.cancelled
                self._tell(Phase.ROLLOUT_CANCELLING, report.rollout_id, detail=why)
            for instance in queued:
                self.runs.say(instance, Phase.QUEUED, report.rollout_id)
            # Whoever waits for the rollout's id hears of it before any host step begins.
            await self.bus.flush()
            ended = "failed"
            try:
                ended = await self._run_and_finish(report, work)
            finally:
                self._rollout_id = None
                self._tell(
                    Phase.ROLLOUT_FINISHED, report.rollout_id, result=ended, detail=_counts(report)
                )
                await self.runs.logs.flush()
                await self.bus.flush()
        return report

    async def _run_and_finish(
        self, report: RolloutReport, work: Callable[[], Awaitable[None]]
    ) -> str:
        """`work`, then the rollout's finish recorded; how it ended: success, failed, cancelled."""
        try:
            await work()
        finally:
            await self.close()
        report.cancelled = self.runs.cancelled
        summary = _summary(report)
        if report.cancelled is not None:
            summary["cancelled"] = report.cancelled
        try:
            await patiently(
                lambda: self.store.finish_rollout(
                    report.rollout_id,
                    status=RolloutStatus.SUCCESS if report.ok else RolloutStatus.FAILED,
                    summary=summary,
                ),
                patience=self.policy.patience,
            )
        except StoreError as failure:
            if not report.failed:
                counts = _counts(report)
                raise StoreUnavailable(
                    f"rollout {report.rollout_id} ran ({counts}) but its finish is not recorded:"
                    f" {failure}; the next command's recovery finishes it"
                ) from failure
            # their outcomes say what went wrong; recovery finishes the rollout
        if report.cancelled is not None:
            return "cancelled"
        return "success" if report.ok else "failed"

    def _tell(
        self, phase: Phase, rollout_id: str, *, result: str | None = None, detail: str = ""
    ) -> None:
        """Publish an event of the rollout (its `detail` masked)."""
        masked = self.runs.masker(detail) if detail else ""
        self.bus.publish(Event(phase, utc_now(), rollout_id, result=result, detail=masked))

    def _halt(self) -> str:
        """Why no deployment may begin now ("" when one may): the rollout was cancelled, or
        this controller lost its lease (nothing is begun in the store or run on a host then)."""
        if self.runs.cancelled is not None:
            return f"cancelled: {self.runs.cancelled}"
        try:
            self.runs.lease.check()
        except LeaseLost as lost:
            return self.runs.masker(f"not begun: {lost}")
        return ""

    def _skip(self, instance: Instance, why: str, rollout_id: str) -> Outcome:
        outcome = Outcome(instance.name, "skipped", instance.revision, why)
        return self.runs.finished(instance, outcome, rollout_id)

    async def _run_waves(
        self,
        waves: Sequence[Sequence[Step]],
        report: RolloutReport,
        *,
        force: bool,
        disabled: frozenset[str] = frozenset(),
    ) -> None:
        failed_services: set[str] = set()
        limit = asyncio.Semaphore(self.max_in_flight)
        rollout = report.rollout_id
        for wave in waves:
            blocked = dependents(self.flat.service_edges(), failed_services)
            stale: dict[str, list[Instance]] = {}
            halt = self._halt()
            for step in wave:
                instance = self.flat.instances[step.name]
                if halt:
                    report.outcomes.append(self._skip(instance, halt, rollout))
                elif step.service in blocked:
                    why = _blocked_reason(step.service, failed_services, self.flat)
                    report.outcomes.append(self._skip(instance, why, rollout))
                elif not step.stale and not force:
                    why = "disabled: enable it first" if step.name in disabled else "up to date"
                    outcome = Outcome(step.name, "unchanged", step.revision, why)
                    report.outcomes.append(self.runs.finished(instance, outcome, rollout))
                else:
                    stale.setdefault(step.service, []).append(instance)
            # Services deployed in one batch go together, so each host gets one round trip
            # per step for all of them; rolling and canary services keep their own pace.
            together = {s: g for s, g in stale.items() if _one_batch(g)}
            apart = [g for s, g in stale.items() if s not in together]
            # Every service's host steps run to their end, even when another one raised.
            joint, separate = await asyncio.gather(
                self._roll_together(together, limit, report.rollout_id, force=force),
                _every(
                    self._roll_service(group, limit, report.rollout_id, force=force)
                    for group in apart
                ),
                return_exceptions=True,
            )
            services = [*together, *(group[0].service for group in apart)]
            rolled = [*_known(joint), *_known(separate)]
            for service, (outcomes, stopped) in zip(services, rolled, strict=True):
                report.outcomes.extend(outcomes)
                if stopped:
                    failed_services.add(service)

    async def _roll_together(
        self,
        groups: dict[str, list[Instance]],
        limit: asyncio.Semaphore,
        rollout: str,
        *,
        force: bool = False,
    ) -> list[tuple[list[Outcome], bool]]:
        """Services of one batch each, deployed at once; per service, whether it stopped."""
        everything = [i for group in groups.values() for i in group]
        began = await self.runs.deploy_many(everything, limit, rollout, force=force)
        done = {o.instance: o for o in began}
        rolled = []
        for group in groups.values():
            outcomes = [done[i.name] for i in group]
            strategy = group[0].strategy
            batches = plan_batches([i.name for i in group], strategy)
            failures = sum(o.result in NOT_DONE for o in outcomes)
            rolled.append((outcomes, batches.exceeded(failures)))
        return rolled

    async def _roll_service(
        self,
        instances: list[Instance],
        limit: asyncio.Semaphore,
        rollout: str,
        *,
        force: bool = False,
    ) -> tuple[list[Outcome], bool]:
        """One service's stale instances under its strategy; True when the service stopped."""
        strategy = instances[0].strategy
        by_name = {i.name: i for i in instances}
        batches = plan_batches(list(by_name), strategy)
        names = list(by_name)
        states = await asyncio.to_thread(lambda: [self.store.instance_state(n) for n in names])
        before = dict(zip(names, states, strict=True))
        outcomes: list[Outcome] = []
        failures = 0
        stop = ""
        for index, batch in enumerate(batches.batches):
            stop = stop or self._halt()
            if stop:
                outcomes.extend(self._skip(by_name[name], stop, rollout) for name in batch)
                continue
            if index and strategy.pause:
                await asyncio.sleep(strategy.pause)
            batch_of = [by_name[name] for name in batch]
            done = await self.runs.deploy_many(batch_of, limit, rollout, force=force)
            outcomes.extend(done)
            failures += sum(o.result in NOT_DONE for o in done)
            if batches.exceeded(failures):
                stop = self.runs.masker(batches.describe_stop(failures))
            elif batches.canary and index == 0:
                healthy = [o for o in done if o.result == "success"]
                trouble = "" if len(healthy) == len(done) else "a canary deployment failed"
                trouble = trouble or await self.canaries.soak(healthy, strategy, rollout)
                if trouble:
                    stop = self.runs.masker(f"canary failed: {trouble}")
                    undone = await self.canaries.roll_back(healthy, before, stop, rollout)
                    replaced = {o.instance for o in undone}
                    outcomes = [o for o in outcomes if o.instance not in replaced] + undone
        return outcomes, bool(stop) and self.runs.cancelled is None

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


def _one_batch(instances: list[Instance]) -> bool:
    """True when the service's strategy deploys all its instances at once (restart, blue-green)."""
    strategy = instances[0].strategy
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


def _counts(report: RolloutReport) -> str:
    counts: dict[str, int] = {}
    for outcome in report.outcomes:
        counts[outcome.result] = counts.get(outcome.result, 0) + 1
    return ", ".join(f"{n} {result}" for result, n in sorted(counts.items()))


async def _every(work: Iterable[Awaitable[T]]) -> list[T]:
    """Await all of `work` to its end, then raise the first exception if one raised."""
    done = await asyncio.gather(*work, return_exceptions=True)
    return [_known(d) for d in done]


def _known(value: T | BaseException) -> T:
    if isinstance(value, BaseException):
        raise value
    return value
