"""Instance lifecycle commands: disable, enable and delete, each a rollout of its own.

`lifecycle_targets` checks the state matrix (plan.lifecycle) for every named instance before
anything starts (the store checks it again when the deployments begin, so a race loses
cleanly) and returns each instance as it is deployed; `start_lifecycle` runs the command as a
rollout (its strategy is the command's name), so it takes the instances as deployments do,
is audited, emits events and can be followed, waited for and cancelled like any rollout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from shipyard.app.rollouts import EventSink, RolloutHandle, start_work
from shipyard.app.selectors import find_instance
from shipyard.app.session import Session
from shipyard.errors import UsageError
from shipyard.plan.lifecycle import Command, check, state_of
from shipyard.store import DeploymentKind

__all__ = ["COMMANDS", "Command", "lifecycle_targets", "start_lifecycle"]

if TYPE_CHECKING:
    from shipyard.config.flatten import Instance
    from shipyard.deploy.manager import Deployer, RolloutReport

COMMANDS = {
    Command.DISABLE: DeploymentKind.DISABLE,
    Command.ENABLE: DeploymentKind.ENABLE,
    Command.DELETE: DeploymentKind.DELETE,
}


def lifecycle_targets(
    session: Session,
    names: Sequence[str],
    command: Command,
    *,
    scope: Callable[[set[str]], None] | None = None,
) -> list[Instance]:
    """Each named instance as deployed (its live snapshot), once the matrix allows `command`
    from its state; the first refusal (naming the instance and why) stops them all. `scope`
    sees the instances' sites first (a server refuses sites outside the caller's there, before
    anything about the instances' states is said)."""
    if command not in COMMANDS:
        raise UsageError(f"{command} is not a lifecycle command")
    if not names:
        raise UsageError(f"name the instances to {command}")
    flat = session.flatten()
    found = [flat.instances.get(n) or _orphan(session, n, command) for n in dict.fromkeys(names)]
    if scope is not None:
        scope({instance.site for instance in found})
    chosen = []
    for instance in found:
        if instance.strategy.uses_slots:
            raise UsageError(
                f"cannot {command} {instance.name}: lifecycle commands do not handle blue/green"
                " instances yet"
            )
        record = session.store.instance_state(instance.name)
        status = record.status.value if record is not None else "none"
        lifecycle = record.lifecycle.value if record is not None else "active"
        check(command, instance.name, state_of(status, lifecycle))
        deployed = record.deployed if record is not None else None
        if deployed is None:  # failed before any success: what the config says is where it is
            chosen.append(instance)
        else:
            chosen.append(
                instance.as_deployed(deployed.revision, deployed.config, deployed.secrets)
            )
    return chosen


async def start_lifecycle(
    session: Session,
    instances: Sequence[Instance],
    command: Command,
    *,
    request: str,
    on_event: EventSink | None = None,
    config_version: int | None = None,
) -> RolloutHandle:
    """Start `command` on `instances` (from `lifecycle_targets`); returns once its rollout's
    row is written."""
    kind = COMMANDS[command]
    chosen = list(instances)

    def work(deployer: Deployer, rollout_id: str) -> Awaitable[RolloutReport]:
        return deployer.lifecycle(chosen, kind, request=request, rollout_id=rollout_id)

    return await start_work(session, work, on_event, config_version)


def _orphan(session: Session, name: str, command: Command) -> Instance:
    """An instance the store holds on a host but no config derives any more (status shows it
    "orphaned"), as it was deployed: it can be disabled or deleted, nothing else."""
    from shipyard.config.flatten import Instance
    from shipyard.config.topology import all_hosts

    record = session.store.instance_state(name)
    if record is None or record.lifecycle.value == "deleted":
        return find_instance(session.flatten(), name)  # refused, suggesting known names
    if command not in (Command.DISABLE, Command.DELETE):
        raise UsageError(f"cannot {command} {name}: no config derives it any more (orphaned)")
    if record.host not in all_hosts(session.flatten().loaded.project):
        raise UsageError(
            f"cannot {command} {name}: its host {record.host} is no longer in the project"
        )
    deployed = record.deployed
    if deployed is None:
        raise UsageError(f"cannot {command} {name}: nothing of it was ever deployed")
    return Instance(
        name, record.service, record.host, record.site, deployed.config, deployed.revision, (),
        deployed.secrets,
    )  # fmt: skip
