"""A canary batch after its deployments: soaked (its health checked for `soak` seconds) and, when
that fails, each canary put back to the release deployed before it (a rollback deployment of its
own) or, new to the service, stopped. Either way its outcome in the rollout is failed, and its
last FINISHED event says so with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shipyard.config.flatten import Instance
from shipyard.config.models import Strategy
from shipyard.deploy.bluegreen import soak_probe, stop_program
from shipyard.deploy.lease import patiently
from shipyard.deploy.runs import Outcome, Result, Runs
from shipyard.deploy.steplogs import Logged
from shipyard.errors import DeployError, ExecutionError, LeaseLost, StoreError
from shipyard.events import Phase
from shipyard.store import InstanceState

# A rollback deployment of an instance as it was deployed (Instance.as_deployed), in a rollout.
RollBack = Callable[[Instance, str], Awaitable[Outcome]]


@dataclass
class Canaries:
    """The soak and the rollback of canaries deployed by `runs`; `deploy` runs a rollback."""

    runs: Runs
    deploy: RollBack

    async def soak(self, canaries: list[Outcome], strategy: Strategy, rollout: str) -> str:
        """Keep checking the canaries' health for `soak` seconds, one attempt each time (at the
        live slot's port for blue/green slots); the reason if one fails (or its host can't
        be asked)."""
        deadline = time.monotonic() + strategy.soak
        instances = [self.runs.flat.instances[o.instance] for o in canaries]
        for instance, done in zip(instances, canaries, strict=True):
            self.runs.say(instance, Phase.SOAKING, rollout, done.deployment_id)
        while True:
            for instance in instances:
                try:
                    self.runs.lease.check()
                    executor = self.runs.executor(instance.host)
                    trouble = await soak_probe(executor, self.runs.release(instance))
                except (DeployError, ExecutionError, LeaseLost) as failure:
                    trouble = str(failure)
                if trouble:
                    return f"{instance.name}: {trouble}"
            if time.monotonic() >= deadline:
                return ""
            interval = self.runs.release(instances[0]).health
            await asyncio.sleep(min(max(interval.interval if interval else 1.0, 0.2), 5.0))

    async def roll_back(
        self,
        canaries: list[Outcome],
        before: dict[str, InstanceState | None],
        why: str,
        rollout: str,
    ) -> list[Outcome]:
        """Put the releases deployed before the canaries back (a rollback deployment each);
        canaries new to the service are stopped. Each canary's outcome is failed (lost, when
        its rollback's result is not recorded), published as its last FINISHED event."""
        out = []
        for done in canaries:
            instance = self.runs.flat.instances[done.instance]
            state = before.get(instance.name)
            snapshot = state.deployed if state is not None else None
            self.runs.say(instance, Phase.ROLLING_BACK, rollout, done.deployment_id, detail=why)
            if snapshot is None:
                outcome = await self._stop(instance, done, why)
            else:
                old = instance.as_deployed(snapshot.revision, snapshot.config, snapshot.secrets)
                back = await self.deploy(old, rollout)
                outcome = _rolled_back(done, back, snapshot.revision, why)
            out.append(self.runs.finished(instance, outcome, rollout))
        return out

    async def _stop(self, instance: Instance, done: Outcome, why: str) -> Outcome:
        """A canary new to the service (nothing deployed there before) that failed its soak:
        its program stopped through the host's supervisor, reported failed."""
        reason = f"stopped (nothing was deployed there before): {why}"
        executor = self.runs.executor(instance.host)
        if done.deployment_id is not None:
            executor = Logged(executor, self.runs.logs, done.deployment_id)
        try:
            self.runs.lease.check()
            trouble = await stop_program(executor, self.runs.release(instance))
        except (DeployError, ExecutionError, LeaseLost) as failure:
            trouble = str(failure)
        if trouble:
            reason = f"{why}\nstopping it failed: {trouble}"
        masked = self.runs.masker(reason)
        if done.deployment_id is not None:
            # Nothing is deployed there any more: the next deploy must deploy it again.
            await self._withdraw(done.deployment_id, masked)
        return Outcome(
            instance.name, "failed", instance.revision, masked, done.deployment_id, done.seconds
        )

    async def _withdraw(self, deployment_id: str, reason: str) -> None:
        store, actor = self.runs.store, self.runs.actor
        with contextlib.suppress(StoreError):  # the outcome says failed; status may lag
            await patiently(
                lambda: store.withdraw(deployment_id, reason=reason, actor=actor),
                patience=self.runs.policy.patience,
            )


def _rolled_back(canary: Outcome, back: Outcome, revision: str, why: str) -> Outcome:
    """A canary's outcome once its rollback (`back`, to `revision`) ran: failed, with why; lost
    when the rollback's result is not surely recorded. It names the rollback's deployment."""
    if back.result == "success":
        reason = f"rolled back to {revision[:12]}: {why}"
    else:
        reason = f"{why}\nrolling back to {revision[:12]}: {back.result}: {back.reason}"
    result: Result = "lost" if back.result == "lost" else "failed"
    deployment_id = back.deployment_id or canary.deployment_id
    return Outcome(
        canary.instance,
        result,
        canary.revision,
        reason,
        deployment_id,
        canary.seconds + back.seconds,
    )
