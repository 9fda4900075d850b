"""An instance's lifecycle: the state it is in, and which command may run from which state.

`ALLOWED` is the one table; every command that changes an instance checks it (`check`) before
it takes the instance, and the README's matrix is printed from it (`matrix_rows`).

    never deployed --deploy--> deployed | failed --disable--> disabled --enable--> deployed
    deployed | failed | disabled --delete--> deleted --deploy--> deployed

An instance being deployed, rolled back, disabled, enabled or deleted is `in progress`: nothing
else may start on it (the one-in-flight rule; the store enforces it too).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from enum import StrEnum

from shipyard.errors import UsageError


class State(StrEnum):
    NEVER_DEPLOYED = "never deployed"
    DEPLOYED = "deployed"
    FAILED = "failed"
    DISABLED = "disabled"
    DELETED = "deleted"
    IN_PROGRESS = "in progress"


class Command(StrEnum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    DISABLE = "disable"
    ENABLE = "enable"
    DELETE = "delete"


S = State
ALLOWED: Mapping[Command, frozenset[State]] = {
    Command.DEPLOY: frozenset({S.NEVER_DEPLOYED, S.DEPLOYED, S.FAILED, S.DELETED}),
    Command.ROLLBACK: frozenset({S.DEPLOYED, S.FAILED}),
    Command.DISABLE: frozenset({S.DEPLOYED, S.FAILED}),
    Command.ENABLE: frozenset({S.DISABLED}),
    Command.DELETE: frozenset({S.DEPLOYED, S.FAILED, S.DISABLED}),
}

# Why a command is refused in a state, and what to do instead; the rest say "is <state>".
_WHY: Mapping[tuple[Command, State], str] = {
    (Command.DEPLOY, S.DISABLED): "it is disabled: enable it first",
    (Command.ROLLBACK, S.NEVER_DEPLOYED): "it was never deployed: there is nothing to go back to",
    (Command.ROLLBACK, S.DISABLED): "it is disabled: enable it first",
    (Command.ROLLBACK, S.DELETED): "it is deleted: deploy it again",
    (Command.DISABLE, S.NEVER_DEPLOYED): "it was never deployed: there is nothing to stop",
    (Command.DISABLE, S.DISABLED): "it is disabled already",
    (Command.DISABLE, S.DELETED): "it is deleted",
    (Command.ENABLE, S.NEVER_DEPLOYED): "it was never deployed: deploy it",
    (Command.ENABLE, S.DEPLOYED): "it is not disabled",
    (Command.ENABLE, S.FAILED): "it is not disabled (its last deployment failed: deploy it)",
    (Command.ENABLE, S.DELETED): "it is deleted: deploy it again",
    (Command.DELETE, S.NEVER_DEPLOYED): "it was never deployed: there is nothing to remove",
    (Command.DELETE, S.DELETED): "it is deleted already",
}


class LifecycleRefused(UsageError):
    """A command the state matrix does not allow from the instance's state."""

    def __init__(self, command: Command, instance: str, state: State) -> None:
        self.command, self.instance, self.state = command, instance, state
        if state is S.IN_PROGRESS:
            why = "a deployment or lifecycle command is in progress on it"
        else:
            why = _WHY.get((command, state), f"it is {state}")
        super().__init__(f"cannot {command} {instance}: {why}")


def state_of(status: str, lifecycle: str) -> State:
    """The state from the store's record: its deployment `status` (none, pending,
    in_progress, success, failed) and its `lifecycle` (active, disabled, deleted)."""
    if status in ("pending", "in_progress"):
        return S.IN_PROGRESS
    if lifecycle == "deleted":
        return S.DELETED
    if lifecycle == "disabled":
        return S.DISABLED
    return {"none": S.NEVER_DEPLOYED, "failed": S.FAILED}.get(status, S.DEPLOYED)


def check(command: Command, instance: str, state: State) -> None:
    """Refuse `command` on `instance` unless the matrix allows it from `state`."""
    if state not in ALLOWED[command]:
        raise LifecycleRefused(command, instance, state)


def matrix_rows() -> Iterator[list[str]]:
    """The matrix as table rows: a header (the states), then per command "yes" or "-"."""
    yield ["", *(state.value for state in State)]
    for command, allowed in ALLOWED.items():
        yield [command.value, *("yes" if state in allowed else "-" for state in State)]


def matrix_markdown() -> str:
    """The matrix as the README shows it: a Markdown table."""
    header, *rows = matrix_rows()
    lines = ["| " + " | ".join(["command \\ state", *header[1:]]) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
