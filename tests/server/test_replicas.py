"""Two `shipyard serve` replicas on one PostgreSQL, behind a real nginx, over the hello example's
local hosts (issue 15's first part).

nginx sends everything to replica b while it answers and to a (its backup) once it does not.
A browser on replica a follows a rollout that runs on b as it happens (b's events reach a by
LISTEN/NOTIFY). Then b is killed (SIGKILL) while its deployments wait in their install step:
a's recovery sweep fails them within 30 s, naming b; the rollout ends as failed; an SSE client
that followed it through nginx reconnects with Last-Event-ID, lands on a, and gets every event
of the rollout exactly once; the hosts still run the release they ran before; and a new rollout
through nginx succeeds.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.hello_copy import copy_hello, stop_hosts, upload
from tests.store.local_project import free_port
from tests.store_fixtures import PostgresServer

from shipyard.app.queries import BUSY

from .serve_process import ServeProcess, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

DATABASE = "shipyard_replicas"
NGINX = "/usr/sbin/nginx"
FAILOVER_SECONDS = 30.0  # the bound: a dead replica's deployments failed within this
LEASE = "6"  # seconds; the sweep runs every second


@pytest.fixture(scope="module")
def database(postgresql_server: PostgresServer) -> str:
    with postgresql_server.admin() as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}" TEMPLATE template0')
    return postgresql_server.url(DATABASE)


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The hello example, its install step held while a gate file exists."""
    root = copy_hello(tmp_path_factory.mktemp("replicas"), net="127.0.63")
    gate = root.parent / f"{root.name}.gate"  # outside the project: an upload replaces it
    text = (root / "shipyard.yaml").read_text()
    held = f'      start: [python3, server.py]\n      install: [sh, -c, "while [ -e {gate} ]; do sleep 0.1; done"]\n'
    (root / "shipyard.yaml").write_text(text.replace("      start: [python3, server.py]\n", held))
    try:
        yield root
    finally:
        stop_hosts(root)


@dataclass
class Replicas:
    a: ServeProcess
    b: ServeProcess
    balancer: str  # nginx's URL
    token: str

    def client(self, url: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=url, headers=headers, timeout=30.0)


@pytest.fixture(scope="module")
def replicas(hello: Path, database: str) -> Iterator[Replicas]:
    env = {
        "SHIPYARD_DATABASE_URL": database, "SHIPYARD_LEASE_SECONDS": LEASE,
        "SHIPYARD_RECOVERY_INTERVAL": "1", "SHIPYARD_ACTOR": "replicas",
    }  # fmt: skip
    project = hello / "shipyard.yaml"
    logs = hello.parent
    with serving(project, {**env, "SHIPYARD_REPLICA": "a"}, log=logs / "a.log") as a:
        assert a.token is not None  # the first start made the admin token
        with (
            serving(project, {**env, "SHIPYARD_REPLICA": "b"}, log=logs / "b.log") as b,
            balancing(hello / "nginx", primary=b.url, backup=a.url) as balancer,
        ):
            yield Replicas(a, b, balancer, a.token)


@contextlib.contextmanager
def balancing(directory: Path, *, primary: str, backup: str) -> Iterator[str]:
    """nginx on a free port in front of `primary`, with `backup` for when it does not answer;
    streams pass unbuffered. Stopped by its PID."""
    directory.mkdir()
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {directory}/access.log;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    upstream replicas {{
        server {primary.removeprefix("http://")} max_fails=1 fail_timeout=60s;
        server {backup.removeprefix("http://")} backup;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://replicas;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_buffering off;
            proxy_read_timeout 1h;
            proxy_next_upstream error timeout http_502 http_503;
        }}
    }}
}}
"""
    )
    process = subprocess.Popen(
        [NGINX, "-p", str(directory), "-c", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, (directory / "error.log").read_text()
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)
        yield url
    finally:
        process.send_signal(signal.SIGQUIT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Follower:
    """An SSE client in a thread: reads every event after `after`, reconnecting with
    Last-Event-ID whenever its stream breaks, until the rollout `until` finishes."""

    url: str
    token: str
    after: int
    until: str | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    connections: int = 0
    done: threading.Event = field(default_factory=threading.Event)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        return thread

    def _run(self) -> None:
        last = self.after
        deadline = time.monotonic() + 240
        while not self.done.is_set() and time.monotonic() < deadline:
            headers = {"Authorization": f"Bearer {self.token}", "Last-Event-ID": str(last)}
            try:
                with httpx.stream(
                    "GET", f"{self.url}/api/events/stream", headers=headers,
                    timeout=httpx.Timeout(10.0, read=30.0),
                ) as stream:  # fmt: skip
                    if stream.status_code != 200:
                        time.sleep(0.2)
                        continue
                    self.connections += 1
                    data = ""
                    for line in stream.iter_lines():
                        if line.startswith("data:"):
                            data += line[5:].strip()
                        elif line == "" and data:
                            event = json.loads(data)
                            data = ""
                            if "id" not in event or "phase" not in event:
                                continue  # a resume notice
                            last = max(last, int(event["id"]))
                            self.events.append(event)
                            self.arrived.append(time.time())
                            if self._final(event):
                                self.done.set()
                                return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)

    def _final(self, event: dict[str, Any]) -> bool:
        return (
            self.until is not None
            and event["phase"] == "rollout-finished"
            and event["rollout_id"] == self.until
        )


def last_event(client: httpx.Client) -> int:
    last = 0
    while True:
        page = client.get("/api/events", params={"after": last, "limit": 1000}).json()["events"]
        if not page:
            return last
        last = page[-1]["id"]


def stored_ids(client: httpx.Client, rollout_id: str) -> list[int]:
    found: list[int] = []
    after = 0
    while True:
        page = client.get(
            "/api/events", params={"after": after, "limit": 1000, "rollout": rollout_id}
        ).json()["events"]
        if not page:
            return found
        found.extend(e["id"] for e in page)
        after = page[-1]["id"]


def wait_finished(client: httpx.Client, rollout_id: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found: dict[str, Any] = client.get(f"/api/rollouts/{rollout_id}").json()
        if found["status"] != "in_progress":
            return found
        time.sleep(0.2)
    raise AssertionError(f"rollout {rollout_id} still in progress after {timeout:g} s")


def test_a_rollout_on_one_replica_is_followed_live_on_the_other(replicas: Replicas) -> None:
    with replicas.client(replicas.balancer) as lb, replicas.client(replicas.a.url) as a:
        assert lb.post("/api/bootstrap", json={}).status_code == 200
        follower = Follower(replicas.a.url, replicas.token, last_event(a))
        follower.start()
        started = lb.post("/api/rollouts", json={"instances": ["greeter"]})
        assert started.status_code == 202, started.text
        rollout = started.json()["id"]
        follower.until = rollout
        found = wait_finished(a, rollout, 120)
        assert found["status"] == "success", found
        assert follower.done.wait(30), f"a's stream did not end: {follower.events[-3:]}"
        got = [e["id"] for e in follower.events if e.get("rollout_id") == rollout]
        assert got == stored_ids(a, rollout)  # every event, once, in order


def test_a_version_published_on_one_replica_is_served_by_the_other(
    replicas: Replicas, hello: Path
) -> None:
    with replicas.client(replicas.balancer) as lb, replicas.client(replicas.a.url) as a:
        published = lb.post(
            "/api/versions",
            json={"files": upload(hello, ("release: v1", "release: v2")), "message": "v2"},
        )
        assert published.status_code == 201, published.text
        version = published.json()["version"]["id"]
        deadline = time.monotonic() + 15
        while a.get("/api/versions").json()["serving"] != version:
            assert time.monotonic() < deadline, "replica a still serves the older version"
            time.sleep(0.2)
        stale = a.get("/api/status", params={"service": "greeter"}).json()["rows"]
        assert stale
        assert all(row["stale"] for row in stale)  # a derives v2's revisions now


def test_a_killed_replica_is_failed_by_the_other_and_a_follower_misses_nothing(
    replicas: Replicas, hello: Path
) -> None:
    gate = hello.parent / f"{hello.name}.gate"
    with replicas.client(replicas.balancer) as lb, replicas.client(replicas.a.url) as a:
        before = {row["instance"]: row for row in a.get("/api/status").json()["rows"]}
        follower = Follower(replicas.balancer, replicas.token, last_event(a))
        follower.start()
        gate.touch()
        try:
            started = lb.post("/api/rollouts", json={"instances": ["greeter"], "force": True})
            assert started.status_code == 202, started.text
            rollout = started.json()["id"]
            follower.until = rollout
            deadline = time.monotonic() + 60
            while not sum(e["phase"] == "installing" for e in list(follower.events)) >= 2:
                assert time.monotonic() < deadline, f"not installing: {follower.events[-3:]}"
                time.sleep(0.1)
            os.kill(replicas.b.process.pid, signal.SIGKILL)
            killed = time.monotonic()
            replicas.b.process.wait(timeout=10)
            found = wait_finished(a, rollout, FAILOVER_SECONDS + 10)
            took = time.monotonic() - killed
        finally:
            gate.unlink(missing_ok=True)
        assert took < FAILOVER_SECONDS, f"the deployments were failed {took:.1f} s after the kill"
        assert found["status"] == "failed", found
        errors = {d["instance"]: d.get("error") or "" for d in found["deployments"]}
        assert {d["status"] for d in found["deployments"]} == {"failed"}, found["deployments"]
        assert all("replica b" in why for why in errors.values()), errors
        assert found.get("cancelled") is None

        assert follower.done.wait(30), f"the follower did not see the end: {follower.events[-3:]}"
        assert follower.connections >= 2  # its stream broke with b and went on through a
        got = [e["id"] for e in follower.events if e.get("rollout_id") == rollout]
        assert got == stored_ids(a, rollout)  # nothing lost, nothing twice

        # Nothing stuck, and the hosts still run what they ran.
        status = {row["instance"]: row for row in a.get("/api/status").json()["rows"]}
        for name, row in status.items():
            assert row["status"] not in BUSY, row
            assert row["deployed_revision"] == before[name]["deployed_revision"], row
        again = lb.post("/api/rollouts", json={"instances": ["greeter"], "force": True})
        assert again.status_code == 202, again.text
        assert wait_finished(lb, again.json()["id"], 120)["status"] == "success"


def test_the_listener_hears_a_commit_of_another_connection(database: str) -> None:
    """store/notices.py: NOTIFY from a transaction reaches a listener once it commits."""
    from sqlalchemy.engine import make_url

    from shipyard.store.notices import CHANNEL, EventNotices

    heard = threading.Event()
    stop = threading.Event()
    calls: list[float] = []

    def rung() -> None:
        calls.append(time.monotonic())
        if len(calls) > 1:  # the first call follows the connection
            heard.set()

    notices = EventNotices(make_url(database))
    thread = threading.Thread(target=notices.run, args=(rung, stop), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not calls:
            assert time.monotonic() < deadline, "the listener never connected"
            time.sleep(0.05)
        with psycopg.connect(database.replace("+psycopg", "")) as conn:
            conn.execute(f"NOTIFY {CHANNEL}")
            time.sleep(0.3)
            assert not heard.is_set()  # not before the commit
        assert heard.wait(5)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()


def test_a_replica_paused_past_its_lease_touches_nothing_when_it_wakes(
    replicas: Replicas, hello: Path, database: str
) -> None:
    """Replica c is stopped (SIGSTOP) with its deployments in their install step; a fails them
    once c's lease runs out and deploys the same instances; then c goes on (SIGCONT): no row
    and no host changes again (the lease check before its next step, and the hosts' fence)."""
    gate = hello.parent / f"{hello.name}.gate"
    env = {
        "SHIPYARD_DATABASE_URL": database, "SHIPYARD_LEASE_SECONDS": LEASE,
        "SHIPYARD_RECOVERY_INTERVAL": "1", "SHIPYARD_ACTOR": "replicas", "SHIPYARD_REPLICA": "c",
    }  # fmt: skip
    with (
        serving(hello / "shipyard.yaml", env, log=hello.parent / "c.log") as c_server,
        replicas.client(c_server.url) as c,
        replicas.client(replicas.a.url) as a,
    ):
        assert c.post("/api/bootstrap", json={}).status_code == 200
        files = upload(hello, ("release: v2", "release: v3"))  # a new release: it installs
        assert c.post("/api/versions", json={"files": files}).status_code == 201
        gate.touch()
        try:
            started = c.post("/api/rollouts", json={"instances": ["greeter"]})
            assert started.status_code == 202, started.text
            paused = started.json()["id"]
            deadline = time.monotonic() + 60
            while True:
                seen = a.get("/api/events", params={"rollout": paused}).json()["events"]
                if sum(e["phase"] == "installing" for e in seen) >= 2:
                    break
                if time.monotonic() > deadline:
                    ids = {e["deployment_id"] for e in seen if e.get("deployment_id")}
                    logs = [a.get(f"/api/deployments/{d}/log").json() for d in ids]
                    raise AssertionError(f"{[(e['phase'], e['detail']) for e in seen]} {logs}")
                time.sleep(0.1)
            c_server.signal(signal.SIGSTOP)
            try:
                failed = wait_finished(a, paused, FAILOVER_SECONDS + 10)
                assert failed["status"] == "failed", failed
                errors = {d.get("error") or "" for d in failed["deployments"]}
                assert all("replica c lost its lease" in why for why in errors), errors
                gate.unlink()
                newer = a.post("/api/rollouts", json={"instances": ["greeter"], "force": True})
                assert newer.status_code == 202, newer.text
                done = wait_finished(a, newer.json()["id"], 120)
                assert done["status"] == "success", [d.get("error") for d in done["deployments"]]
                live = {d["instance"]: d["revision"] for d in done["deployments"]}
                rows = {d["id"]: d for d in failed["deployments"]}
            finally:
                c_server.signal(signal.SIGCONT)
            time.sleep(float(LEASE))  # c wakes, finds its lease gone, and stops
        finally:
            gate.unlink(missing_ok=True)
        after = a.get(f"/api/rollouts/{paused}").json()
        assert {d["id"]: d for d in after["deployments"]} == rows  # no row of c's changed
        status = {r["instance"]: r for r in a.get("/api/status").json()["rows"]}
        for name, revision in live.items():
            assert status[name]["deployed_revision"] == revision
            assert status[name]["status"] == "success"
        for host in {name.split("@")[1] for name in live}:
            epochs = list((hello / ".shipyard" / "hosts" / host).rglob(".shipyard-epoch"))
            assert epochs, f"{host} has no epoch file"
