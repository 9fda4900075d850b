"""The CLI in client mode: status, plan, diff, show, validate, audit and audit verify through a
real `shipyard serve` print exactly what the same commands print locally."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .serve_process import serving

pytestmark = pytest.mark.integration

CLI_TIMEOUT = 300.0


@dataclass(frozen=True)
class Served:
    """A `shipyard serve` process over the project, and how to run the CLI beside it."""

    url: str
    root: Path
    env: dict[str, str]  # the local CLI's: the same project and store as the server's
    token: str

    def cli(self, *args: str, remote: bool = False) -> subprocess.CompletedProcess[str]:
        env = dict(self.env)
        words = list(args)
        if remote:
            env["SHIPYARD_TOKEN"] = self.token
            words = ["--server", self.url, *words]
        return subprocess.run(
            [sys.executable, "-m", "shipyard", *words], cwd=self.root, env=env,
            capture_output=True, text=True, check=False, timeout=CLI_TIMEOUT,
        )  # fmt: skip

    def same(self, *args: str) -> str:
        """Run the command here and through the server; both outputs must be the same."""
        here = self.cli(*args)
        there = self.cli(*args, remote=True)
        assert here.returncode == 0, here.stderr
        assert there.returncode == 0, there.stderr
        assert there.stdout == here.stdout
        return here.stdout


@pytest.fixture
def served(served_root: Path, tmp_path: Path) -> Iterator[Served]:
    env = {
        **os.environ,
        "SHIPYARD_DATABASE_URL": f"sqlite:///{tmp_path}/state.db",
        "SHIPYARD_ACTOR": "tester",
        "SHIPYARD_CREDENTIALS": str(tmp_path / "credentials.json"),
        "COLUMNS": "200",
        "PYTHONPATH": os.pathsep.join(sys.path),
    }
    env.pop("SHIPYARD_SERVER", None)
    env.pop("SHIPYARD_TOKEN", None)
    with serving(served_root / "shipyard.yaml", env, log=tmp_path / "serve.log") as server:
        assert server.token is not None
        yield Served(server.url, served_root, env, server.token)


def test_reading_commands_print_the_same_through_the_server(served: Served) -> None:
    for args in (("validate",), ("show", "web@local"), ("plan",), ("plan", "web", "--site", "dev")):
        served.same(*args)
        served.same(*args, "--json")
    before = served.same("status", "--all")
    assert "never deployed" in before
    served.same("diff")
    served.same("diff", "web", "--json")
    deployed = served.cli("deploy", "web@local", "--force")  # by another process: the CLI
    assert deployed.returncode == 0, deployed.stderr
    after = served.same("status", "--all")
    assert "success" in after
    served.same("status", "--json")
    served.same("status", "--site", "dev")
    served.same("plan", "--json")
    served.same("diff", "--json")
    audit = served.same("audit")
    assert "tester" in audit
    served.same("audit", "--json")
    served.same("audit", "--instance", "web@local", "--limit", "1")
    served.same("audit", "--since", "2000-01-01T00:00:00", "--json")
    served.same("audit", "verify")
    served.same("audit", "verify", "--json")
    checked = served.cli("health", "--check")
    assert checked.returncode == 0, checked.stderr
    served.same("health")
    served.same("health", "--json")
    served.same("health", "--site", "dev")
    assert "no drift" in served.same("drift")


def test_errors_come_back_as_the_local_ones(served: Served) -> None:
    here = served.cli("show", "nope@local")
    there = served.cli("show", "nope@local", remote=True)
    assert (here.returncode, there.returncode) == (2, 2)
    assert 'no instance "nope@local"' in there.stderr
    unknown = served.cli("status", "--site", "mars", remote=True)
    assert unknown.returncode == 2
    assert 'unknown site "mars"' in unknown.stderr
