"""Fixtures for tests that need a state store: a real PostgreSQL the suite starts, and store URLs.

The server starts once per session (only if a test asks for it), as the `postgres` user when we
run as root, listening on 127.0.0.1 only; each test gets an empty database.

    store_url          parametrised: a SQLite file, then a PostgreSQL database (marked integration)
    store              an open, migrated Store on store_url, closed after the test
    postgresql_url     an empty PostgreSQL database for this test (emptied, not recreated)
    postgresql_database, postgresql_server   the session's database and server

To use them anywhere under tests/, add `pytest_plugins = ["store_fixtures"]` to tests/conftest.py;
tests/store/conftest.py loads this module itself when nobody else has.
"""

from __future__ import annotations

import ctypes
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from shipyard.store import Store, open_store

SERVER_USER = "postgres"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
TEST_DATABASE = "shipyard_test"
PR_SET_PDEATHSIG = 1
# Looked up here, not in the forked child, where loading a library could deadlock.
PRCTL = ctypes.CDLL(None).prctl if sys.platform == "linux" else None


@dataclass
class PostgresServer:
    """A PostgreSQL server this test session started and will stop."""

    host: str
    port: int
    user: str
    process: subprocess.Popen[bytes]
    workdir: Path

    def admin(self) -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit connection to the `postgres` database, for CREATE/DROP DATABASE."""
        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname="postgres", autocommit=True
        )

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{database}"

    def log(self) -> str:
        return (self.workdir / "postgres.log").read_text(errors="replace")


def find_bindir() -> Path | None:
    """Where initdb and postgres live: $SHIPYARD_PG_BINDIR, Debian's newest, or the PATH."""
    configured = os.environ.get("SHIPYARD_PG_BINDIR")
    if configured:
        return Path(configured)
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.parent.name)],
    )
    if debian:
        return debian[-1].parent
    found = shutil.which("postgres")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_postgres(bindir: Path) -> PostgresServer:
    """initdb into a temporary directory and start `postgres` there; raises if it won't come up."""
    # PostgreSQL refuses to run as root: the server runs as `postgres` in a directory it owns.
    as_user = SERVER_USER if os.geteuid() == 0 else None
    workdir = Path(tempfile.mkdtemp(prefix="shipyard-pg-"))
    if as_user:
        entry = pwd.getpwnam(as_user)
        os.chown(workdir, entry.pw_uid, entry.pw_gid)
    data = workdir / "data"
    initdb = [str(bindir / "initdb"), "-D", str(data), "-U", SERVER_USER, "-A", "trust"]
    initdb += ["-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"]
    extra_groups: list[str] | None = [] if as_user else None  # [] drops root's groups
    subprocess.run(
        initdb, cwd=workdir, check=True, capture_output=True,
        user=as_user, group=as_user, extra_groups=extra_groups,
    )  # fmt: skip
    port = free_port()
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port),
        "unix_socket_directories": str(workdir),
        # A throwaway server: durability buys nothing here and costs seconds.
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }
    argv = [str(bindir / "postgres"), "-D", str(data)]
    argv += [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
    with (workdir / "postgres.log").open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
            user=as_user, group=as_user, extra_groups=extra_groups,
            preexec_fn=stop_with_parent,  # noqa: PLW1509 (it calls one C function, loaded before)
        )  # fmt: skip
    server = PostgresServer("127.0.0.1", port, SERVER_USER, process, workdir)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            server.admin().close()
            return server
        except psycopg.OperationalError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_postgres(server)
                raise RuntimeError(f"PostgreSQL did not start:\n{server.log()}") from None
            time.sleep(0.05)


def stop_with_parent() -> None:
    """In the server's process: get SIGINT (fast shutdown) if pytest dies without a finalizer."""
    if PRCTL is not None:
        PRCTL(PR_SET_PDEATHSIG, signal.SIGINT)


def stop_postgres(server: PostgresServer) -> None:
    """Stop the server by its pid (SIGINT: fast shutdown) and remove its directory."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    shutil.rmtree(server.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (make system-deps installs it)")
    server = start_postgres(bindir)
    try:
        yield server
    finally:
        stop_postgres(server)


@pytest.fixture(scope="session")
def postgresql_database(postgresql_server: PostgresServer) -> str:
    """The session's test database; postgresql_url empties it before each test."""
    with postgresql_server.admin() as admin:
        admin.execute(f'CREATE DATABASE "{TEST_DATABASE}" TEMPLATE template0')
    return TEST_DATABASE


@pytest.fixture
def postgresql_url(postgresql_server: PostgresServer, postgresql_database: str) -> str:
    """An empty PostgreSQL database for this test (the same one, emptied: much faster)."""
    with postgresql_server.admin() as admin:
        # Connections a previous test leaked would hold locks DROP SCHEMA waits for.
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (postgresql_database,),
        )
    database = postgresql_server.url(postgresql_database)
    with psycopg.connect(database.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return database


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    url: str = request.getfixturevalue("postgresql_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """An open store, migrated to head, on each kind of database."""
    with open_store(store_url) as opened:
        yield opened
