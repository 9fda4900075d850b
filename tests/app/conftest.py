"""Sessions over real projects: a SQLite store in the project and one local host."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.store.local_project import stop_supervisord, write_project

from shipyard.app.hosts import bootstrap
from shipyard.app.session import Identity, Session
from shipyard.deploy.lease import LeasePolicy
from shipyard.store import Controller


def make_session(root: Path, **env: str) -> Session:
    """A session as a server would make one: everything passed in, nothing read from os.environ."""
    identity = Identity(actor="tester", controller=Controller.of_process(), policy=LeasePolicy())
    return Session(project_file=root / "shipyard.yaml", env=env, identity_source=identity)


@pytest.fixture
def project_root() -> Iterator[Path]:
    """The one-service project of tests/store, not yet bootstrapped. A short directory:
    supervisord's socket path must fit in 108 bytes."""
    workdir = Path(tempfile.mkdtemp(prefix="shipyard-app-"))
    root = workdir / "p"
    write_project(root)
    try:
        yield root
    finally:
        stop_supervisord(root / ".shipyard" / "hosts" / "local" / "supervisor")
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def session(project_root: Path) -> Iterator[Session]:
    with make_session(project_root) as made:
        yield made


@pytest.fixture
def booted(session: Session) -> Session:
    """The session's local host bootstrapped (its own supervisord, stopped afterwards)."""
    [result] = asyncio.run(bootstrap(session))
    assert result.error == "", result
    return session
