"""A secret's value never leaves for anywhere but its host: not a terminal, not JSON, not the store.

One project on a local host uses a secret (a unique sentinel value from the environment) in its
env, in a rendered file and in its health-check commands, and its install, start and failing
health check all echo it. Every command is run with and without `--json`, through a successful
deploy, a rollback, `run` on the host, a failing deploy, its events and its step logs; the sentinel must appear in no
stdout or stderr and in no byte under `.shipyard` (the state store, its WAL and shared memory
included, read raw after every command). The host's own release does hold it, as it must.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from local_project import HOST, LocalProject, bootstrapped, explain

from shipyard.masking import MASK

pytestmark = pytest.mark.integration

INSTANCE = f"web@{HOST}"
# The program and its install print the secret from their environment, on both streams.
ECHO = 'echo "$0 token=$TOKEN"; echo "$0 token=$TOKEN on stderr" >&2'


def template(health: list[str], release: str) -> dict[str, Any]:
    return {
        "artifact": {"path": "app"},
        "commands": {
            "install": ["sh", "-c", ECHO, "install"],
            "start": ["sh", "-c", f"{ECHO}; exec sleep 3600", "start"],
        },
        "env": {"TOKEN": "{{ secrets.token }}", "RELEASE": release},
        "files": {"settings.conf": "files/settings.conf.j2"},
        "health": {"command": health, "timeout": 5, "retries": 1, "interval": 0.1},
    }


HEALTHY = ["sh", "-c", 'echo "checking {{ secrets.token }}"; test -n "$1"', "check", "ok"]
FAILING = ["sh", "-c", 'echo "unhealthy: {{ secrets.token }}" >&2; exit 1']


@pytest.fixture
def project(tmp_path: Path) -> LocalProject:
    return sentinel_project(tmp_path)


def sentinel_project(tmp_path: Path) -> LocalProject:
    """The project, with a unique sentinel value for its secret in its environment."""
    sentinel = f"sentinel-{uuid.uuid4().hex}"
    found = LocalProject(tmp_path / "project", tmp_path / "host", env={"SENTINEL_TOKEN": sentinel})
    (found.dir / "app").mkdir(parents=True)
    (found.dir / "app" / "README").write_text("an artifact\n")
    (found.dir / "files").mkdir()
    (found.dir / "files" / "settings.conf.j2").write_text("token = {{ secrets.token }}\n")
    return found


def configure(project: LocalProject, health: list[str], release: str) -> None:
    project.write(
        {"app": template(health, release)},
        {"web": {"template": "app", "hosts": [HOST]}},
        secrets={"token": {"env": "SENTINEL_TOKEN"}},
    )


def both(project: LocalProject, *args: str, expect: int = 0) -> None:
    """ARGS as a person and as a script run them."""
    project.shipyard(*args, expect=expect)
    project.shipyard(args[0], "--json", *args[1:], expect=expect)
    assert_nothing_kept(project)


def assert_nothing_kept(project: LocalProject) -> None:
    """No output of a command run so far, and no file under `.shipyard` (state.db, -wal and
    -shm read as bytes), holds the sentinel."""
    sentinel = project.env["SENTINEL_TOKEN"]
    for done in project.runs:
        if sentinel in done.stdout or sentinel in done.stderr:
            pytest.fail(f"the secret was printed by {explain(done)}")
    shipyard_dir = project.dir / ".shipyard"
    for path in sorted(shipyard_dir.rglob("*")) if shipyard_dir.exists() else []:
        data = path.read_bytes() if path.is_file() else b""
        at = data.find(sentinel.encode())
        if at >= 0:
            pytest.fail(f"the secret is in {path}: {data[max(at - 200, 0) : at + 60]!r}")


def test_a_secret_reaches_its_host_and_nothing_else(project: LocalProject) -> None:
    sentinel = project.env["SENTINEL_TOKEN"]
    configure(project, HEALTHY, "v1")
    both(project, "validate")
    both(project, "plan")
    both(project, "show", INSTANCE)
    with bootstrapped(project):
        project.shipyard("deploy")
        configure(project, HEALTHY, "v2")
        project.shipyard("deploy", "--json")
        assert_nothing_kept(project)
        release = project.host_root / "web" / "current"
        assert (release / "settings.conf").read_text() == f"token = {sentinel}\n"

        both(project, "status")
        configure(project, HEALTHY, "v3")
        both(project, "diff")
        project.shipyard("rollback", INSTANCE)
        project.shipyard("rollback", INSTANCE, "--json")
        assert_nothing_kept(project)

        settings = str(release / "settings.conf")
        both(project, "run", "--", "cat", settings)
        both(project, "run", "--", "sh", "-c", 'cat "$1" >&2; exit 3', "fail", settings, expect=1)
        both(project, "run", "--", "printenv", "SENTINEL_TOKEN")

        configure(project, FAILING, "v4")
        failed = project.shipyard("deploy", expect=1)
        again = project.shipyard("deploy", "--json", expect=1)
        assert_nothing_kept(project)
        # The reasons were there, with the secret masked: the description of the health check,
        # its last line and the program's stderr.
        assert f"unhealthy: {MASK}" in again.stdout, explain(again)
        assert f"start token={MASK} on stderr" in again.stdout, explain(again)
        assert "unhealthy" in failed.stdout, explain(failed)

        # The event stream and the host output kept per step say what happened, masked.
        both(project, "events")
        events = project.shipyard("events", "--json")
        assert f"unhealthy: {MASK}" in events.stdout, explain(events)
        failures = [
            e["deployment_id"]
            for e in json.loads(events.stdout)
            if e["phase"] == "finished" and e["result"] == "failed"
        ]
        # The site event log shows, searches and stores its one-line messages masked too.
        both(project, "events", "--search", "unhealthy")
        searched = project.shipyard("events", "--search", "unhealthy", "--json")
        assert f"unhealthy: {MASK}" in searched.stdout, explain(searched)
        both(project, "events", "purge", "--days", "3650")
        both(project, "logs", failures[0])  # the first failing deploy installed v4
        logs = project.shipyard("logs", failures[0])
        assert f"install token={MASK}" in logs.stdout, explain(logs)

        both(project, "status")
        both(project, "audit")
        both(project, "hosts")
        both(project, "health", "--check")
        both(project, "drift")
        both(project, "health")

    assert len(project.runs) > 20
    assert_nothing_kept(project)
    # The host itself kept the value where the program needs it (and wrote its own logs).
    assert any(sentinel.encode() in p.read_bytes() for p in project.host_root.rglob("*.log"))


def artifacts(project: LocalProject, *args: str) -> None:
    """`shipyard artifacts ARGS` as a person and as a script run it."""
    project.shipyard("artifacts", *args)
    project.shipyard("artifacts", *args, "--json")
    assert_nothing_kept(project)


def test_a_secret_in_a_system_wide_artifact_reaches_its_host_and_nothing_else(
    project: LocalProject,
) -> None:
    sentinel = project.env["SENTINEL_TOKEN"]
    (project.dir / "files" / "conn.j2").write_text("password = {{ secrets.token }}\n")
    sets = {
        "conn": {
            "target": "/shared/conn",
            "mode": "0600",
            "template": True,
            "files": {
                "db.conf": {"source": "files/conn.j2"},
                "inline.txt": {"content": "token {{ secrets.token }}\n"},
            },
        }
    }
    project.write({}, {}, secrets={"token": {"env": "SENTINEL_TOKEN"}}, artifacts=sets)

    artifacts(project, "deploy", "--dry-run")
    project.shipyard("artifacts", "deploy")
    landed = project.host_root / "shared" / "conn"
    assert (landed / "db.conf").read_text() == f"password = {sentinel}\n"
    (landed / "inline.txt").unlink()  # the host's checksum differs: pushed again, with --json
    project.shipyard("artifacts", "deploy", "--json")
    assert (landed / "inline.txt").read_text() == f"token {sentinel}\n"
    artifacts(project, "deploy")  # unchanged now
    artifacts(project, "status")
    artifacts(project, "retry")
    both(project, "events")
    events = project.shipyard("events", "--json")
    assert '"phase": "artifact"' in events.stdout, explain(events)
    both(project, "audit")
    assert_nothing_kept(project)
