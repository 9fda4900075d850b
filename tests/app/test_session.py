"""The session holds what it is given; only `from_environment` reads the process's environment."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.app.conftest import make_session

from shipyard.app.session import Session, actor_from, lease_policy
from shipyard.errors import UsageError


def test_from_environment_takes_actor_and_lease_tuning_from_the_mapping_it_is_given(
    project_root: Path,
) -> None:
    env = {"SHIPYARD_ACTOR": "ci-bot", "SHIPYARD_LEASE_SECONDS": "12"}
    with Session.from_environment(project_root / "shipyard.yaml", env) as made:
        assert made.actor == "ci-bot"
        assert made.policy.seconds == 12
        assert made.policy.heartbeat == 2
        assert made.controller.id  # this process, a fresh id


def test_an_invalid_lease_setting_is_a_usage_error_naming_the_variable() -> None:
    with pytest.raises(UsageError, match="SHIPYARD_LEASE_SECONDS"):
        lease_policy({"SHIPYARD_LEASE_SECONDS": "soon"})
    with pytest.raises(UsageError, match="SHIPYARD_STORE_PATIENCE"):
        lease_policy({"SHIPYARD_STORE_PATIENCE": "-1"})


def test_without_an_actor_variable_the_actor_is_user_at_machine() -> None:
    assert "@" in actor_from({})


def test_the_store_url_comes_from_the_session_env_not_the_process(
    project_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHIPYARD_DATABASE_URL", "mysql://nowhere/state")
    elsewhere = project_root / "elsewhere.db"
    with make_session(project_root, SHIPYARD_DATABASE_URL=f"sqlite:///{elsewhere}") as made:
        assert made.store.instance_states() == []
    assert elsewhere.exists()
    assert not (project_root / ".shipyard" / "state.db").exists()


def test_the_project_loads_once_and_its_store_opens_once(project_root: Path) -> None:
    with make_session(project_root) as made:
        assert made.flatten() is made.flatten()
        assert made.store is made.store
    assert made._store is None  # closed on leaving
