"""The real CLI against a real `shipyard serve` (a free 127.0.0.1 port, stopped by its PID):
deploy, rollback, logs --follow and events --follow print what they print locally."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.store.local_project import LocalProject

from .serve_process import ServeProcess, serving
from .test_server_lifecycle import (  # noqa: F401 (fixtures)
    assert_stopped_cleanly,
    booted_slow_project,
    slow_project,
)

pytestmark = pytest.mark.integration

CLI_TIMEOUT = 300


@dataclass
class Both:
    """One project and store, used by a server and by the CLI run here."""

    server: ServeProcess
    project: Path
    env: dict[str, str]
    elsewhere: Path  # a directory with no project in it

    def local(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(["-p", str(self.project), *args], self.env)

    def remote(self, *args: str) -> subprocess.CompletedProcess[str]:
        assert self.server.token is not None
        env = {"SHIPYARD_TOKEN": self.server.token, "SHIPYARD_CREDENTIALS": "/nonexistent"}
        # No project and no store here: everything goes through the server.
        return self._run(["--server", self.server.url, *args], env, cwd=self.elsewhere)

    def _run(
        self, args: list[str], env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        blank = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *args],
            env={**blank, **env}, capture_output=True, text=True, timeout=CLI_TIMEOUT, cwd=cwd,
            check=False,
        )  # fmt: skip


@pytest.fixture
def both(served_root: Path, tmp_path: Path) -> Iterator[Both]:
    env = {"SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/state.db", "SHIPYARD_ACTOR": "tester"}
    project = served_root / "shipyard.yaml"
    with serving(project, env, log=tmp_path / "serve.log") as server:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        yield Both(server, project, env, elsewhere)


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def comparable(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The outcomes without what differs from one rollout to the next (ids, seconds)."""
    return [
        {k: v for k, v in o.items() if k not in ("deployment_id", "seconds")}
        for o in result["outcomes"]
    ]


def test_deploy_through_the_server_prints_what_a_local_deploy_prints(both: Both) -> None:
    local = json.loads(ok(both.local("deploy", "web@local", "--force", "--json")))
    remote = json.loads(ok(both.remote("deploy", "web@local", "--force", "--json")))
    assert comparable(remote) == comparable(local)
    assert (remote["ok"], remote["cancelled"]) == (local["ok"], local["cancelled"])
    assert remote["outcomes"][0]["deployment_id"] is not None
    assert remote["outcomes"][0]["seconds"] > 0


def test_the_table_and_the_progress_lines_come_through_the_server(both: Both) -> None:
    shown = both.remote("deploy", "web@local", "--force")
    text = ok(shown)
    assert "web@local uploading" in text
    assert "web@local success" in text
    assert text.rstrip().endswith("1 success")


def test_logs_and_events_follow_through_the_server_as_locally(both: Both) -> None:
    result = json.loads(ok(both.remote("deploy", "web@local", "--force", "--json")))
    rollout_id = result["rollout"]
    deployment = result["outcomes"][0]["deployment_id"]
    follow = ("events", "--rollout", rollout_id, "--follow", "--json")
    assert ok(both.remote(*follow)) == ok(both.local(*follow))
    logs = ("logs", deployment, "--follow")
    remote_logs = ok(both.remote(*logs))
    assert remote_logs == ok(both.local(*logs))
    assert remote_logs.rstrip().endswith("deployment success")


def test_a_refused_rollback_is_refused_through_the_server_as_locally(both: Both) -> None:
    # One revision only (the project is shared by the session): nothing earlier to go back to.
    ok(both.remote("deploy", "web@local", "--force", "--json"))
    local = both.local("rollback", "web@local", "--json")
    remote = both.remote("rollback", "web@local", "--json")
    assert (remote.returncode, remote.stdout) == (local.returncode, local.stdout)
    assert "no earlier successful release" in remote.stdout


def test_disable_and_enable_run_through_the_server_as_rollouts(both: Both) -> None:
    ok(both.remote("deploy", "web@local", "--force", "--json"))
    off = json.loads(ok(both.remote("disable", "web@local", "--json")))
    assert [o["result"] for o in off["outcomes"]] == ["success"]
    [row] = json.loads(ok(both.remote("status", "--json")))
    assert (row["status"], row["stale"]) == ("disabled", False)
    refused = both.remote("disable", "web@local", "--json")
    assert refused.returncode == 2
    assert "cannot disable web@local: it is disabled already" in refused.stdout
    on = json.loads(ok(both.remote("enable", "web@local", "--json")))  # the shared host back
    assert [o["result"] for o in on["outcomes"]] == ["success"]
    assert json.loads(ok(both.local("status", "--json")))[0]["status"] == "success"


def test_ctrl_c_cancels_the_rollout_through_the_server(
    slow_project: LocalProject,  # noqa: F811 (the fixture imported above)
) -> None:
    env = dict(slow_project.env)
    with serving(slow_project.root / "shipyard.yaml", env) as server:
        assert server.token is not None
        blank = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        running = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "--server", server.url,
             "deploy", "web@local", "--force", "--json"],
            env={**blank, "SHIPYARD_TOKEN": server.token}, cwd=slow_project.root.parent,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            assert running.stderr is not None
            for line in running.stderr:  # progress goes to stderr under --json
                if line.rstrip().endswith("web@local health-checking"):
                    break
            running.send_signal(signal.SIGINT)
            out, err = running.communicate(timeout=120)
        finally:
            if running.poll() is None:
                running.kill()
                running.communicate()
    assert running.returncode == 1, err
    assert "cancelling rollout" in err
    report = json.loads(out)
    assert report["cancelled"].startswith("interrupted (Ctrl-C)")
    [outcome] = report["outcomes"]
    assert outcome["instance"] == "web@local"


def test_sigterm_ends_a_followed_stream_and_the_server_stops_cleanly(both: Both) -> None:
    ok(both.remote("deploy", "web@local", "--force", "--json"))
    assert both.server.token is not None
    blank = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    following = subprocess.Popen(
        [sys.executable, "-m", "shipyard", "--server", both.server.url,
         "events", "--follow", "--json"],
        env={**blank, "SHIPYARD_TOKEN": both.server.token}, cwd=both.elsewhere,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert following.stdout is not None
        first = json.loads(following.stdout.readline())  # connected: the stream is live
        both.server.signal(signal.SIGTERM)
        out, err = following.communicate(timeout=120)
    finally:
        if following.poll() is None:
            following.kill()
            following.communicate()
    assert first["phase"] == "rollout-started"
    assert following.returncode == 1, err
    assert "the server ended the event stream" in out + err  # --json: the error on stdout
    assert_stopped_cleanly(both.server)
