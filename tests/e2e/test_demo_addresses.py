"""`make demo`'s addresses: when another program holds one, the demo moves to free ones, or says
exactly which address is taken and how to choose others (scripts/demo_addresses.py, which
scripts/demo runs before anything listens)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli_runner import cli_env, shipyard

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "hello"
SELECT = REPO / "scripts" / "demo_addresses.py"
HELD = ("127.0.10.1", 8200)  # east-1's nginx in the example


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    target = tmp_path / "hello"
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns(".shipyard", "__pycache__"))
    return target


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """Another program's server on one of the demo's fixed addresses."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(HELD)
        except OSError as trouble:  # someone else holds it already: just as good for the test
            pytest.skip(f"{HELD[0]}:{HELD[1]} is held by another program: {trouble}")
        holder.listen()
        yield holder


def select(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SELECT), "shipyard.yaml"],
        cwd=project,
        capture_output=True,
        text=True,
        env=cli_env(**env),
        check=False,
        timeout=60,
    )


def bindable(address: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def test_a_held_demo_address_moves_the_demo_to_a_free_network(
    hello: Path, held: socket.socket
) -> None:
    chosen = select(hello)
    assert chosen.returncode == 0, chosen.stderr
    front = chosen.stdout.strip()
    net = front.rpartition(".")[0]
    assert net != "127.0.10"
    assert "127.0.10.1:8200 in use by another program" in chosen.stderr
    assert f"listen on {net}.x instead" in chosen.stderr

    shown = json.loads(shipyard("show", "front@east-1", "--json", cwd=hello).stdout)
    config = shown["config"]
    assert config["env"]["BIND"] == front
    assert config["strategy"]["front"] == f"{front}:8200"
    assert config["strategy"]["upstream_host"] == front
    sites = yaml.safe_load((hello / "shipyard.yaml").read_text())["sites"]
    binds = {
        name: host["vars"]["bind"] for s in sites.values() for name, host in s["hosts"].items()
    }
    assert binds == {
        "east-1": front,
        "east-2": f"{net}.2",
        "west-1": f"{net}.3",
        "west-2": f"{net}.4",
    }
    for port in (8100, 8200, 8201, 8202):
        assert bindable(front, port)


def test_a_held_address_on_the_chosen_network_is_named_with_how_to_choose_others(
    hello: Path, held: socket.socket
) -> None:
    before = (hello / "shipyard.yaml").read_text()
    refused = select(hello, SHIPYARD_DEMO_NET="127.0.10")
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "address already in use: 127.0.10.1:8200" in refused.stderr
    assert "SHIPYARD_DEMO_NET=127.0.N make demo" in refused.stderr
    assert (hello / "shipyard.yaml").read_text() == before


def test_a_chosen_network_is_used_when_free_and_nonsense_is_refused(hello: Path) -> None:
    net = next(f"127.0.{n}" for n in range(200, 255) if bindable(f"127.0.{n}.1", 8200))
    chosen = select(hello, SHIPYARD_DEMO_NET=net)
    assert chosen.returncode == 0, chosen.stderr
    assert chosen.stdout.strip() == f"{net}.1"
    assert f"bind: {net}.3" in (hello / "shipyard.yaml").read_text()
    nonsense = select(hello, SHIPYARD_DEMO_NET="10.0.0")
    assert nonsense.returncode == 1
    assert "SHIPYARD_DEMO_NET='10.0.0'" in nonsense.stderr


def test_the_demo_script_selects_its_addresses_before_anything_listens() -> None:
    demo = (REPO / "scripts" / "demo").read_text()
    select_at = demo.index("demo_addresses.py")
    assert select_at < demo.index("shipyard bootstrap")
    assert "127.0.10." not in demo[select_at:]


def test_init_writes_a_free_port_when_its_default_one_is_held(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            holder.bind(("127.0.0.1", 8080))
            holder.listen()
        except OSError:
            pass  # another program holds it already: the same situation
        written = shipyard("init", "web", cwd=tmp_path)
    assert written.returncode == 0, written.stderr
    port = yaml.safe_load((tmp_path / "web" / "shipyard.yaml").read_text())["templates"]["web"][
        "ports"
    ]["http"]
    assert port != 8080
    assert f"127.0.0.1:8080 is in use by another program: the service listens on port {port}" in (
        written.stderr
    )
    assert "--port chooses" in written.stderr
    chosen = shipyard("init", "other", "--port", "18555", cwd=tmp_path)
    assert chosen.returncode == 0, chosen.stderr
    assert "http: 18555" in (tmp_path / "other" / "shipyard.yaml").read_text()
