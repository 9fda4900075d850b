"""The lifecycle state matrix: every (command, state) pair is allowed or refused by the one
table, and a refusal names the command, the instance and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.plan.lifecycle import (
    ALLOWED,
    Command,
    LifecycleRefused,
    State,
    check,
    matrix_markdown,
    matrix_rows,
    state_of,
)

PAIRS = [(command, state) for command in Command for state in State]


@pytest.mark.parametrize(("command", "state"), PAIRS, ids=[f"{c}-{s}" for c, s in PAIRS])
def test_every_pair_is_decided_by_the_table(command: Command, state: State) -> None:
    if state in ALLOWED[command]:
        check(command, "web@h1", state)
        return
    with pytest.raises(LifecycleRefused) as refused:
        check(command, "web@h1", state)
    assert str(refused.value).startswith(f"cannot {command} web@h1: ")


def test_nothing_starts_on_an_instance_in_progress() -> None:
    assert all(State.IN_PROGRESS not in allowed for allowed in ALLOWED.values())
    with pytest.raises(LifecycleRefused, match="in progress on it"):
        check(Command.DELETE, "web@h1", State.IN_PROGRESS)


def test_refusals_say_what_to_do_instead() -> None:
    with pytest.raises(LifecycleRefused, match="it is disabled: enable it first"):
        check(Command.DEPLOY, "web@h1", State.DISABLED)
    with pytest.raises(LifecycleRefused, match="never deployed: there is nothing to remove"):
        check(Command.DELETE, "web@h1", State.NEVER_DEPLOYED)


@pytest.mark.parametrize(
    ("status", "lifecycle", "state"),
    [
        ("none", "active", State.NEVER_DEPLOYED),
        ("success", "active", State.DEPLOYED),
        ("failed", "active", State.FAILED),
        ("success", "disabled", State.DISABLED),
        ("failed", "deleted", State.DELETED),
        ("in_progress", "disabled", State.IN_PROGRESS),
        ("pending", "active", State.IN_PROGRESS),
    ],
)
def test_the_state_comes_from_the_status_and_the_lifecycle(
    status: str, lifecycle: str, state: State
) -> None:
    assert state_of(status, lifecycle) is state


def test_the_matrix_rows_have_a_column_per_state_and_a_row_per_command() -> None:
    header, *rows = list(matrix_rows())
    assert header[1:] == [s.value for s in State]
    assert [r[0] for r in rows] == [c.value for c in Command]
    assert all(len(r) == len(header) for r in rows)


def test_the_readme_shows_the_matrix_the_code_enforces() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert matrix_markdown() in readme
