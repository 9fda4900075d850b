"""System-wide artifacts through the API, in-process over a real store: deploy and retry answer
each host's result, the matrix shows every site, and a deployment user scoped to one site
pushes and reads only there (a request reaching another site is refused whole)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from shipyard.app import tokens

from .conftest import Api, serve
from .serve_process import serving

pytestmark = pytest.mark.integration


def write_project(tmp_path: Path) -> Path:
    root = tmp_path / "p"
    root.mkdir()
    hosts = {
        site: {"hosts": {f"{site}-1": {"connection": "local", "root": str(tmp_path / site)}}}
        for site in ("east", "west")
    }
    document = {
        "name": "artifactapi",
        "sites": hosts,
        "templates": {"t": {"commands": {"start": ["sleep", "60"]}}},
        "services": {"idle": {"template": "t", "sites": ["east"]}},
        "artifacts": {
            "motd": {"target": "/shared", "template": True,
                     "files": {"motd": {"content": "hello {{ site }}\n"}}},
        },
    }  # fmt: skip
    (root / "shipyard.yaml").write_text(yaml.safe_dump(document))
    return root


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Api]:
    yield from serve(write_project(tmp_path), f"sqlite:///{tmp_path}/state.db")


def scoped(api: Api) -> dict[str, str]:
    session = api.state.session.acting_as("admin")
    session.store.add_user(
        user_id=str(uuid.uuid4()), name="east-only", roles=["deployment"], sites=["east"],
        password_hash=None, actor="admin",
    )  # fmt: skip
    token = tokens.create_token(session, "east-only", name="t").token
    return {"Authorization": f"Bearer {token}"}


def test_deploy_answers_each_host_and_the_matrix_shows_every_site(served: Api) -> None:
    answer = served.client.post("/api/artifacts/deploy", json={})
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert {(r["host"], r["result"]) for r in report["results"]} == {
        ("east-1", "success"), ("west-1", "success"),
    }  # fmt: skip
    assert (served.root.parent / "west" / "shared" / "motd").read_text() == "hello west\n"

    cells = served.client.get("/api/artifacts").json()["cells"]
    assert {(c["site"], c["state"]) for c in cells} == {("east", "success"), ("west", "success")}
    assert served.client.post("/api/artifacts/retry", json={}).json()["results"] == []
    dry = served.client.post("/api/artifacts/deploy", json={"dry_run": True}).json()
    assert {r["result"] for r in dry["results"]} == {"unchanged"}


def test_a_scoped_deployer_pushes_and_reads_only_its_sites(served: Api) -> None:
    mine = scoped(served)

    for body in ({}, {"site": "west"}, {"artifacts": ["motd"]}):
        refused = served.anonymous.post("/api/artifacts/deploy", json=body, headers=mine)
        assert refused.status_code == 403, refused.text
        assert "west" in refused.json()["error"]["message"]
    retry = served.anonymous.post("/api/artifacts/retry", json={"site": "west"}, headers=mine)
    assert retry.status_code == 403
    assert not (served.root.parent / "west" / "shared").exists()  # nothing pushed there

    done = served.anonymous.post("/api/artifacts/deploy", json={"site": "east"}, headers=mine)
    assert done.status_code == 200, done.text
    assert [r["host"] for r in done.json()["results"]] == ["east-1"]
    cells = served.anonymous.get("/api/artifacts", headers=mine).json()["cells"]
    assert [c["site"] for c in cells] == ["east"]
    outside = served.anonymous.get("/api/artifacts", params={"site": "west"}, headers=mine)
    assert outside.status_code == 403


def test_an_unknown_artifact_or_site_is_refused_naming_it(served: Api) -> None:
    unknown = served.client.post("/api/artifacts/deploy", json={"artifacts": ["mtod"]})
    assert unknown.status_code in (400, 404, 422), unknown.text
    assert "motd" in unknown.json()["error"]["message"]  # the closest known name
    site = served.client.get("/api/artifacts", params={"site": "north"})
    assert "unknown site" in site.json()["error"]["message"]


def test_the_cli_runs_deploy_status_and_retry_through_a_server(tmp_path: Path) -> None:
    root = write_project(tmp_path)
    env = {"SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/state.db", "SHIPYARD_ACTOR": "t"}
    elsewhere = tmp_path / "elsewhere"  # no project here: everything goes through the server
    elsewhere.mkdir()
    with serving(root / "shipyard.yaml", env, log=tmp_path / "serve.log") as server:
        assert server.token is not None
        blank = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
        blank.update({"SHIPYARD_TOKEN": server.token, "SHIPYARD_CREDENTIALS": "/nonexistent"})

        def remote(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [sys.executable, "-m", "shipyard", "--server", server.url, "artifacts", *args],
                env=blank, cwd=elsewhere, capture_output=True, text=True, timeout=120,
                check=False,
            )  # fmt: skip

        pushed = remote("deploy", "--json")
        assert pushed.returncode == 0, pushed.stderr
        assert {r["result"] for r in json.loads(pushed.stdout)["results"]} == {"success"}
        shown = remote("status")
        assert shown.returncode == 0, shown.stderr
        assert "success (1 success)" in shown.stdout
        again = remote("retry", "--site", "east", "--json")
        assert json.loads(again.stdout)["results"] == []
