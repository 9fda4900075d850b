"""Host steps on real hosts: the work of a killed controller does not outlive the next deployment,
and output of any size comes back capped with the exit status and the last lines.

The controller is the `shipyard` CLI as a subprocess, killed with SIGKILL; the hosts are the
sshd fleet's, each with its own supervisord.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploy_project import (
    Project,
    bootstrapped,
    current_target,
    finish,
    free_port,
    hello_template,
    version,
    wait_for,
)

from fleet import Fleet
from shipyard.executors.base import CommandFailed
from shipyard.executors.local import LocalExecutor

pytestmark = pytest.mark.integration

# About 2 MB on stdout and on stderr, then a last line on each and the exit status given as $1.
CHATTY = (
    'l=$(printf "%0100d" 0); i=0; '
    'while [ $i -lt 20000 ]; do echo "$l"; echo "$l" >&2; i=$((i + 1)); done; '
    'echo "last line out"; echo "last line err" >&2; exit "$1"'
)


@pytest.fixture(scope="module")
def hosts(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    found: Fleet = fleet(3)
    with bootstrapped(Project(tmp_path_factory.mktemp("bootstrap-limits"), found)):
        yield found


@pytest.fixture
def project(hosts: Fleet, tmp_path: Path) -> Project:
    return Project(tmp_path / "project", hosts)


def service(port: int, host: str) -> dict[str, Any]:
    return {"template": "hello", "hosts": [host], "overrides": {"ports": {"http": port}}}


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def test_the_next_deployment_ends_the_install_a_killed_controller_left_running(
    project: Project, tmp_path: Path
) -> None:
    host = project.hosts[0]
    port = free_port([host.address])
    started = tmp_path / "install.pid"
    template = hello_template()
    # A long install (think `pip install`) that says which process it is.
    template["commands"]["install"] = [
        "sh",
        "-c",
        'echo $$ > "$1"; exec sleep 300',
        "install",
        str(started),
    ]
    project.write({"leftover": service(port, host.name)}, template=template)
    running = project.start("deploy", "--json")
    try:
        wait_for(lambda: started.exists() and started.read_text().strip() != "", "the install")
    finally:
        os.kill(running.pid, signal.SIGKILL)
        finish(running)
    pid = int(started.read_text())
    try:
        assert _alive(pid)  # the killed controller's install runs on, on the host
        # The next deployment's install fails if the old one still runs when it starts.
        template["commands"]["install"] = [
            "sh",
            "-c",
            'if kill -0 "$1" 2>/dev/null; then echo "install $1 still running" >&2; exit 1; fi',
            "check",
            str(pid),
        ]
        project.write({"leftover": service(port, host.name)}, template=template)

        outcome = project.deploy()["leftover@h001"]

        assert outcome["result"] == "success", outcome
        assert not _alive(pid)
        assert current_target(host, "leftover") == f"releases/{outcome['revision']}"
        assert version(host, port) == "v1"
        assert list((Path(host.root) / "leftover" / ".shipyard-steps").iterdir()) == []
    finally:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_an_install_printing_megabytes_succeeds_and_a_failing_one_says_why(
    project: Project,
) -> None:
    host = project.hosts[1]
    port = free_port([host.address])
    template = hello_template()
    template["commands"]["install"] = ["sh", "-c", CHATTY, "chatty", "0"]
    project.write({"chatty": service(port, host.name)}, template=template)

    first = project.deploy()["chatty@h002"]

    assert first["result"] == "success", first["reason"][-2000:]
    assert version(host, port) == "v1"

    template["commands"]["install"] = ["sh", "-c", CHATTY, "chatty", "3"]
    project.write({"chatty": service(port, host.name)}, template=template, vars={"release": "v2"})

    failed = project.deploy(expect=1)["chatty@h002"]

    assert failed["result"] == "failed"
    assert "exited with status 3" in failed["reason"]
    assert "last line err" in failed["reason"]
    assert "no frame" not in failed["reason"]
    assert len(failed["reason"]) < 10_000
    assert version(host, port) == "v1"


def test_a_local_command_printing_megabytes_keeps_the_tail_and_says_it_was_cut(
    tmp_path: Path,
) -> None:
    executor = LocalExecutor("local", str(tmp_path))

    result = asyncio.run(executor.run(["sh", "-c", CHATTY, "chatty", "0"]))
    with pytest.raises(CommandFailed) as failed:
        asyncio.run(executor.run(["sh", "-c", CHATTY, "chatty", "3"]))

    assert (result.exit_status, result.stdout_truncated, result.stderr_truncated) == (0, True, True)
    assert result.stdout.endswith("last line out\n")
    assert result.stderr.endswith("last line err\n")
    message = str(failed.value)
    assert "exited with status 3" in message
    assert "[... earlier output cut ...]" in message
    assert message.endswith("| last line err")
