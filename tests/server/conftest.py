"""The server in-process over a real project: one local host (its own supervisord, bootstrapped
once per session and stopped by its pid), a fresh store per test (SQLite in a temporary
directory, or the suite's PostgreSQL), and a client that speaks to the app through its lifespan
(`fastapi.testclient.TestClient`, so rollouts run as server jobs on the app's own loop).

    def test_something(api: Api) -> None:
        assert api.get("/api/status").status_code == 200

`api` carries the admin token the server made at its start; `api.anonymous` has none.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.store.local_project import stop_supervisord, write_project

from shipyard.server.app import create_app
from shipyard.server.settings import Settings
from shipyard.server.state import ServerState


def pytest_configure(config: pytest.Config) -> None:
    if config.pluginmanager.has_plugin("store_fixtures"):
        return
    imported = sys.modules.get("store_fixtures")
    if imported is not None:
        config.pluginmanager.register(imported, "store_fixtures")
    else:
        config.pluginmanager.import_plugin("store_fixtures")


@dataclass
class Api:
    """A client with the admin token, the state of the running app, and where it all lives."""

    client: TestClient
    anonymous: TestClient
    state: ServerState
    token: str
    root: Path
    env: dict[str, str]

    def get(self, path: str, **kwargs: object) -> object:
        return self.client.get(path, **kwargs)  # type: ignore[arg-type]

    def post(self, path: str, **kwargs: object) -> object:
        return self.client.post(path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def served_root() -> Iterator[Path]:
    """The one-instance project of tests/store (web@local, Python's http.server), its host
    bootstrapped once for the session."""
    with bootstrapped_root("shipyard-srv-") as root:
        yield root


@contextlib.contextmanager
def bootstrapped_root(prefix: str) -> Iterator[Path]:
    """The one-instance project in a new temporary directory, bootstrapped; its supervisord
    stopped by its pid at the end. A short path: supervisord's socket must fit 108 bytes."""
    from shipyard.app.hosts import bootstrap
    from shipyard.app.session import Session

    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    root = workdir / "p"
    write_project(root)
    env = {"SHIPYARD_DATABASE_URL": f"sqlite:///{workdir}/boot.db", "SHIPYARD_ACTOR": "tester"}
    try:
        with Session.from_environment(root / "shipyard.yaml", env) as session:
            [result] = asyncio.run(bootstrap(session))
            assert result.error == "", result
        yield root
    finally:
        stop_supervisord(root / ".shipyard" / "hosts" / "local" / "supervisor")
        shutil.rmtree(workdir, ignore_errors=True)


def wait_finished(api: Api, rollout_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The rollout once it is over (and this server runs it no more)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = api.client.get(f"/api/rollouts/{rollout_id}").json()
        if found["status"] != "in_progress" and not found["running_here"]:
            return dict(found)
        time.sleep(0.1)
    raise AssertionError(f"rollout {rollout_id} still running after {timeout:g} s")


def serve(
    root: Path, database_url: str, admin_token: str | None = None, **settings: object
) -> Iterator[Api]:
    """The app over `root` with its store at `database_url`, started and stopped around the
    test; `settings` override Settings' defaults. A store used before needs its `admin_token`
    (one is made, and shown, only at the first start)."""
    env = {"SHIPYARD_DATABASE_URL": database_url, "SHIPYARD_ACTOR": "server"}
    # No health rounds unless a test asks for them: their events would join every stream.
    settings = {"health_interval": 0.0, **settings}
    made = Settings(project=root / "shipyard.yaml", **settings)  # type: ignore[arg-type]
    app = create_app(made, environ=env)
    with TestClient(app, raise_server_exceptions=False) as client:
        state: ServerState = app.state.shipyard
        token = state.admin_token or admin_token
        assert token is not None  # a fresh store: made at this start
        client.headers["Authorization"] = f"Bearer {token}"
        anonymous = TestClient(app, raise_server_exceptions=False)
        yield Api(client, anonymous, state, token, root, env)


@pytest.fixture
def api(served_root: Path, tmp_path: Path) -> Iterator[Api]:
    """The server over SQLite (a fresh store in this test's directory)."""
    yield from serve(served_root, f"sqlite:///{tmp_path}/state.db")


@pytest.fixture
def pg_api(served_root: Path, postgresql_url: str) -> Iterator[Api]:
    """The server over the suite's PostgreSQL (emptied before the test)."""
    yield from serve(served_root, postgresql_url)
