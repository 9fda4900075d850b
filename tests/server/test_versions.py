"""Config versions over the API: published at start, by reload and by upload (validated
first), diffed, and deployed pinned; and `shipyard push` against a real `shipyard serve`."""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from tests.store.local_project import free_port

from shipyard.app import projectfiles
from shipyard.app.project import plan

from .conftest import Api, bootstrapped_root, serve, wait_finished

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def own_root() -> Iterator[Path]:
    """A project of this module's own (uploads rewrite its files), bootstrapped once."""
    with bootstrapped_root("shipyard-ver-") as root:
        yield root


@pytest.fixture
def project(own_root: Path) -> Iterator[Path]:
    """The module's project with its files as written at first, before and after each test."""
    original = projectfiles.read_project(own_root)
    try:
        yield own_root
    finally:
        projectfiles.replace_project(own_root, original)
        shutil.rmtree(own_root / ".shipyard" / "versions", ignore_errors=True)


@pytest.fixture(params=["sqlite", "postgresql"])
def vapi(request: pytest.FixtureRequest, project: Path, tmp_path: Path) -> Iterator[Api]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/state.db"
    else:
        url = request.getfixturevalue("postgresql_url")
    yield from serve(project, url)


def changed(root: Path, message: str) -> dict[str, str]:
    """The project's files, base64, with the web template's MESSAGE set to `message`."""
    files = projectfiles.read_project(root)
    data = yaml.safe_load(files["shipyard.yaml"])
    data["templates"]["web"]["env"] = {"MESSAGE": message}
    files["shipyard.yaml"] = yaml.safe_dump(data).encode()
    return {p: base64.b64encode(c).decode() for p, c in files.items()}


def action_of(api: Api, instance: str) -> str:
    [step] = [s for wave in plan(api.state.session).to_json()["waves"] for s in wave]
    assert step["instance"] == instance
    return str(step["action"])


def test_the_start_publishes_the_served_directory_as_version_1(vapi: Api) -> None:
    listed = vapi.client.get("/api/versions").json()
    assert [v["id"] for v in listed["versions"]] == [1]
    assert listed["versions"][0]["source"] == "start"
    assert "shipyard.yaml" in listed["versions"][0]["files"]
    assert listed["serving"] == 1


def test_reloading_an_unchanged_directory_is_the_same_version(vapi: Api) -> None:
    again = vapi.client.post("/api/versions/reload")
    assert again.status_code == 200, again.text
    assert (again.json()["version"]["id"], again.json()["created"]) == (1, False)


def test_a_reload_after_the_directory_changed_publishes_and_serves_it(vapi: Api) -> None:
    before = vapi.state.session.flatten().instances["web@local"].revision
    files = {p: base64.b64decode(c) for p, c in changed(vapi.root, "edited").items()}
    projectfiles.write_files(vapi.root, files)
    reloaded = vapi.client.post("/api/versions/reload", json={"message": "edited in place"})
    assert reloaded.status_code == 201, reloaded.text
    version = reloaded.json()["version"]
    assert (version["id"], version["source"], version["message"]) == (
        2,
        "reload",
        "edited in place",
    )
    assert version["published_by"] == "admin"
    assert vapi.state.version == 2
    assert vapi.state.session.flatten().instances["web@local"].revision != before


def test_an_upload_publishes_version_2_and_the_instance_is_then_stale(vapi: Api) -> None:
    done = wait_finished(vapi, deploy(vapi, {"instances": ["web@local"], "force": True}))
    assert done["status"] == "success", done
    assert action_of(vapi, "web@local") == "none"
    made = vapi.client.post(
        "/api/versions", json={"files": changed(vapi.root, "second"), "message": "two"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["version"]["id"] == made.json()["serving"] == 2
    assert vapi.state.version == 2
    assert "second" in (vapi.root / "shipyard.yaml").read_text()
    assert action_of(vapi, "web@local") == "update"  # stale: the new version changes it


def test_an_invalid_upload_is_refused_with_every_problem_and_nothing_published(
    vapi: Api,
) -> None:
    files = projectfiles.read_project(vapi.root)
    data = yaml.safe_load(files["shipyard.yaml"])
    data["services"]["web"]["template"] = "nope"
    data["services"]["web"]["bogus"] = 1
    files["shipyard.yaml"] = yaml.safe_dump(data).encode()
    body = {p: base64.b64encode(c).decode() for p, c in files.items()}
    before = (vapi.root / "shipyard.yaml").read_bytes()
    refused = vapi.client.post("/api/versions", json={"files": body})
    assert refused.status_code == 422, refused.text
    problems = refused.json()["error"]["details"]["problems"]
    assert len(problems) >= 2
    assert {p["file"] for p in problems} == {"shipyard.yaml"}
    assert all(p["line"] > 0 for p in problems)
    assert [v["id"] for v in vapi.client.get("/api/versions").json()["versions"]] == [1]
    assert (vapi.root / "shipyard.yaml").read_bytes() == before
    assert vapi.state.version == 1


def test_an_upload_naming_a_path_outside_the_project_is_refused(vapi: Api) -> None:
    body = {"../escape": "eA==", "shipyard.yaml": "eA=="}
    refused = vapi.client.post("/api/versions", json={"files": body})
    assert refused.status_code == 400, refused.text
    assert "../escape" in refused.json()["error"]["message"]


def deploy(api: Api, body: dict[str, Any]) -> str:
    started = api.client.post("/api/rollouts", json=body)
    assert started.status_code == 202, started.text
    return str(started.json()["id"])


def test_a_rollout_records_its_config_version_and_version_1_deploys_pinned_after_2(
    vapi: Api,
) -> None:
    first = wait_finished(vapi, deploy(vapi, {"instances": ["web@local"], "force": True}))
    assert (first["status"], first["config_version"]) == ("success", 1)
    v1_revision = first["deployments"][0]["revision"]
    made = vapi.client.post("/api/versions", json={"files": changed(vapi.root, "second")})
    assert made.status_code == 201, made.text
    second = wait_finished(vapi, deploy(vapi, {"instances": ["web@local"]}))
    assert (second["status"], second["config_version"]) == ("success", 2)
    assert second["deployments"][0]["revision"] != v1_revision
    pinned = wait_finished(vapi, deploy(vapi, {"instances": ["web@local"], "version": 1}))
    assert (pinned["status"], pinned["config_version"]) == ("success", 1), pinned
    assert pinned["deployments"][0]["revision"] == v1_revision


def test_a_rollback_to_a_version_goes_back_to_what_it_deployed(vapi: Api) -> None:
    first = wait_finished(vapi, deploy(vapi, {"instances": ["web@local"], "force": True}))
    v1_revision = first["deployments"][0]["revision"]
    vapi.client.post("/api/versions", json={"files": changed(vapi.root, "second")})
    assert wait_finished(vapi, deploy(vapi, {"instances": ["web@local"]}))["status"] == "success"
    back = vapi.client.post("/api/rollbacks", json={"instance": "web@local", "version": 1})
    assert back.status_code == 202, back.text
    done = wait_finished(vapi, back.json()["id"])
    assert (done["status"], done["config_version"]) == ("success", 1), done
    assert done["deployments"][0]["revision"] == v1_revision


def test_the_diff_of_two_versions_names_the_changed_file_and_instance(vapi: Api) -> None:
    vapi.client.post("/api/versions", json={"files": changed(vapi.root, "second")})
    shown = vapi.client.get("/api/versions/1/diff/2")
    assert shown.status_code == 200, shown.text
    body = shown.json()
    [file] = body["files"]
    assert (file["path"], file["change"]) == ("shipyard.yaml", "changed")
    assert "+      MESSAGE: second" in file["unified"]
    [instance] = body["instances"]
    assert (instance["instance"], instance["change"]) == ("web@local", "changed")
    assert instance["old_revision"] != instance["new_revision"]
    assert any("MESSAGE" in e["path"] for e in instance["entries"])


def test_an_unknown_version_is_404(vapi: Api) -> None:
    assert vapi.client.get("/api/versions/99").status_code == 404
    assert vapi.client.get("/api/versions/1/diff/99").status_code == 404


def test_shipyard_push_uploads_a_checkout_to_a_running_server(
    project: Path, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ, "SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
        "SHIPYARD_ACTOR": "server", "NO_COLOR": "1",
    }  # fmt: skip
    env.pop("SHIPYARD_SERVER", None)
    output = tmp_path / "serve.log"
    with open(output, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "shipyard", "--project", str(project / "shipyard.yaml"),
             "serve", "--listen", f"127.0.0.1:{port}"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        token = read_token(server, output, port)
        checkout = tmp_path / "checkout"
        shutil.copytree(project, checkout, ignore=shutil.ignore_patterns(".shipyard"))
        data = yaml.safe_load((checkout / "shipyard.yaml").read_text())
        data["templates"]["web"]["env"] = {"MESSAGE": "pushed"}
        (checkout / "shipyard.yaml").write_text(yaml.safe_dump(data))
        client_env = {**env, "SHIPYARD_TOKEN": token}
        pushed = subprocess.run(
            [sys.executable, "-m", "shipyard", "--project", str(checkout / "shipyard.yaml"),
             "--server", f"http://127.0.0.1:{port}", "push", "--message", "from a checkout"],
            env=client_env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert "version 2" in pushed.stdout
        assert "pushed" in (project / "shipyard.yaml").read_text()
        listed = cli(checkout, port, client_env, "versions")
        assert listed.returncode == 0, listed.stderr
        assert "*    2" in listed.stdout
        shown = cli(checkout, port, client_env, "versions", "diff", "1", "2")
        assert shown.returncode == 0, shown.stderr
        assert "changed: web@local" in shown.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def cli(
    checkout: Path, port: int, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipyard", "--project", str(checkout / "shipyard.yaml"),
         "--server", f"http://127.0.0.1:{port}", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def read_token(server: subprocess.Popen[bytes], output: Path, port: int) -> str:
    """The admin token the server prints once at its first start, once it listens."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        text = output.read_text(errors="replace")
        tokens = [w for w in text.split() if w.startswith("shy_")]
        if tokens and "shipyard serving" in text and listening(port):
            return tokens[0]
        time.sleep(0.1)
    raise AssertionError(f"the server printed no admin token: {output.read_text()}")


def listening(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
