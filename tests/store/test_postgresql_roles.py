"""PostgreSQL with an owner role for migrations and a runtime role for everything else.

The runtime role deploys, records rollouts and appends to the audit log, but it cannot update,
delete, truncate the audit log, nor drop or disable its triggers (it does not own the table).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from shipyard.errors import StoreError
from shipyard.events import Event, Phase
from shipyard.store import DeploymentStatus, RolloutStatus, StepLog, open_store, utc_now
from shipyard.store.roles import runtime_grants
from store_fixtures import PostgresServer

from .builders import begin, config

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Roles:
    owner: str
    runtime: str
    server: PostgresServer
    database: str

    def url(self, role: str, driver: str = "+psycopg") -> str:
        server = self.server
        return f"postgresql{driver}://{role}@{server.host}:{server.port}/{self.database}"

    def connect(self, role: str) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(self.url(role, driver=""), autocommit=True)


@pytest.fixture
def roles(postgresql_server: PostgresServer, postgresql_url: str) -> Iterator[Roles]:
    """Two login roles made for this test: the database's owner and the runtime role."""
    suffix = uuid.uuid4().hex[:8]
    made = Roles(f"shipyard_owner_{suffix}", f"shipyard_app_{suffix}", postgresql_server,
                 postgresql_url.rsplit("/", 1)[1])  # fmt: skip
    with postgresql_server.admin() as admin:
        admin.execute(f"CREATE ROLE {made.owner} LOGIN")
        admin.execute(f"CREATE ROLE {made.runtime} LOGIN")
    with made.connect(postgresql_server.user) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {made.owner}")
        conn.execute("REVOKE ALL ON SCHEMA public FROM PUBLIC")
    try:
        yield made
    finally:
        with made.connect(postgresql_server.user) as conn:
            conn.execute(f"REASSIGN OWNED BY {made.owner}, {made.runtime} TO {server_user(made)}")
            conn.execute(f"DROP OWNED BY {made.owner}, {made.runtime}")
        with postgresql_server.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename IN (%s, %s)",
                (made.owner, made.runtime),
            )
            admin.execute(f"DROP ROLE {made.owner}")
            admin.execute(f"DROP ROLE {made.runtime}")


def server_user(roles: Roles) -> str:
    return roles.server.user


def test_the_runtime_role_works_but_cannot_rewrite_the_audit_log(roles: Roles) -> None:
    open_store(roles.url(roles.owner)).close()  # the owner migrates
    with roles.connect(roles.owner) as owner:
        for statement in runtime_grants(roles.runtime):
            owner.execute(statement)
    with open_store(roles.url(roles.runtime)) as store:  # at head: opening only reads
        store.begin_rollout(rollout_id="r1", actor="alice", request="deploy", strategy="restart")
        begin(store, "d1")
        store.mark_in_progress("d1")
        store.finish_deployment("d1", status=DeploymentStatus.SUCCESS, snapshot=config("r1"))
        store.finish_rollout("r1", status=RolloutStatus.SUCCESS, summary={"success": 1})
        store.append_events([Event(Phase.FINISHED, utc_now(), "r1", "d1", result="success")])
        store.append_step_logs([StepLog("d1", 1, "install", "web-1", utc_now(), 0, "x")])
        assert store.verify_audit().whole
        assert store.verify_audit().count == 4

    refused = [
        "UPDATE audit SET actor = 'mallory'",
        "DELETE FROM audit",
        "TRUNCATE audit",
        "INSERT INTO audit SELECT * FROM audit ON CONFLICT (id) DO UPDATE SET actor = 'm'",
        "ALTER TABLE audit DISABLE TRIGGER audit_no_update_delete",
        "DROP TRIGGER audit_no_update_delete ON audit",
        "DROP TABLE audit",
        "UPDATE alembic_version SET version_num = '0001'",
        "CREATE TABLE audit_copy (id int)",
    ]
    with roles.connect(roles.runtime) as runtime:
        for statement in refused:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                runtime.execute(statement)
        # What it may do: read, and append (a forged row is then found by verify).
        assert runtime.execute("SELECT count(*) FROM audit").fetchone() == (4,)
    with open_store(roles.url(roles.runtime)) as store:
        assert store.verify_audit().whole


def test_the_runtime_role_cannot_migrate(roles: Roles) -> None:
    with roles.connect(roles.owner) as owner:
        owner.execute(f"GRANT USAGE ON SCHEMA public TO {roles.runtime}")
    with pytest.raises(StoreError, match="cannot open the state store"):
        open_store(roles.url(roles.runtime))
