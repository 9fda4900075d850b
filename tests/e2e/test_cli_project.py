"""The CLI as a user runs it: exit codes, human output and --json."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello"


def shipyard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run(
        [sys.executable, "-m", "shipyard", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".shipyard", "__pycache__"))
    return target


def test_init_writes_a_project_that_validates_and_plans(tmp_path: Path) -> None:
    assert shipyard("init", "demo", cwd=tmp_path).returncode == 0
    project = tmp_path / "demo"
    result = shipyard("validate", cwd=project)
    assert result.returncode == 0, result.stderr
    assert "1 instance(s)" in result.stdout
    planned = json.loads(shipyard("plan", "--json", cwd=project).stdout)
    assert planned["waves"][0][0]["instance"] == "web@local"
    again = shipyard("init", "demo", cwd=tmp_path)
    assert again.returncode == 2
    assert "refusing to overwrite" in again.stderr


def test_plan_orders_the_example_in_dependency_waves(hello: Path) -> None:
    result = shipyard("plan", "--json", cwd=hello)
    assert result.returncode == 0, result.stderr
    waves = [[step["instance"] for step in wave] for wave in json.loads(result.stdout)["waves"]]
    assert waves == [
        ["greeter@east-1", "greeter@east-2", "greeter@west-1", "greeter@west-2"],
        ["front@east-1", "front@west-1"],
    ]


def test_show_prints_the_flattened_config_with_its_revision(hello: Path) -> None:
    shown = json.loads(shipyard("show", "front@west-1", "--json", cwd=hello).stdout)
    assert shown["config"]["env"] == {"BIND": "127.0.10.3", "PORT": "8200", "RELEASE": "v1"}
    assert len(shown["revision"]) == 64
    human = shipyard("show", "front@west-1", cwd=hello)
    assert shown["revision"] in human.stdout


def test_invalid_input_exits_2_with_every_problem(hello: Path) -> None:
    text = (hello / "shipyard.yaml").read_text()
    text = text.replace("depends_on: [greeter]", "depends_on: [greeter, db2]")
    text = text.replace("template: hello\n    sites", "template: hallo\n    sites")
    (hello / "shipyard.yaml").write_text(text)
    result = shipyard("validate", cwd=hello)
    assert result.returncode == 2
    assert (
        'shipyard.yaml:47:15: services.greeter.template: unknown template "hallo"' in result.stderr
    )
    assert 'services.front.depends_on[1]: unknown service "db2"' in result.stderr


def test_unknown_instance_and_bad_option_exit_2(hello: Path) -> None:
    result = shipyard("show", "front@nowhere", cwd=hello)
    assert result.returncode == 2
    assert "did you mean" in result.stderr
    assert shipyard("plan", "--bogus", cwd=hello).returncode == 2


def test_schema_is_json_schema(tmp_path: Path) -> None:
    schema = json.loads(shipyard("schema", cwd=tmp_path).stdout)
    assert schema["title"] == "Project"
    assert "services" in schema["properties"]
