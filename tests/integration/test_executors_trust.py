"""Whom the SSH executor trusts: host keys, our own key, and hosts that do not answer."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from fleet import Fleet
from shipyard.config.models import Host, SshSettings
from shipyard.errors import ConnectError
from shipyard.executors import CommandResult, ExecutorPool

pytestmark = pytest.mark.integration


@pytest.fixture
def hosts(fleet: Any) -> Fleet:
    found: Fleet = fleet(4)
    return found


def uname(
    fleet: Fleet,
    project: Path,
    host: Host | None = None,
    *,
    accept_new: bool | None = None,
    **ssh: Any,
) -> CommandResult:
    async def main() -> CommandResult:
        settings = SshSettings(**fleet.ssh_values(**ssh))
        async with ExecutorPool(settings, project, accept_new=accept_new) as pool:
            executor = pool.executor(fleet.hosts[0].name, host or Host())
            return await executor.run(["uname", "-s"])

    return asyncio.run(main())


def other_key_line(names: str) -> str:
    key = asyncssh.generate_private_key("ssh-ed25519")
    return f"{names} {key.export_public_key().decode().strip()}\n"


def test_the_fleet_known_hosts_lets_us_in(hosts: Fleet, tmp_path: Path):
    assert uname(hosts, tmp_path).stdout == "Linux\n"


def test_an_unknown_host_key_is_refused_with_what_to_do(hosts: Fleet, tmp_path: Path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    with pytest.raises(ConnectError) as refused:
        uname(hosts, tmp_path, known_hosts=str(empty))
    message = str(refused.value)
    assert message.startswith(f"{hosts.hosts[0].name}: host key of {hosts.hosts[0].address}")
    assert "is not known (ssh-ed25519 SHA256:" in message
    assert f"ssh-keyscan {hosts.hosts[0].address} >> {empty}" in message
    assert "--accept-new" in message


def test_a_changed_host_key_is_refused_even_with_accept_new(hosts: Fleet, tmp_path: Path):
    first = hosts.hosts[0]
    forged = tmp_path / "known_hosts"
    forged.write_text(other_key_line(f"{first.name},{first.address}"))
    for accept_new in (False, True):
        with pytest.raises(ConnectError, match="HAS CHANGED") as refused:
            uname(hosts, tmp_path, known_hosts=str(forged), accept_new=accept_new)
        assert "ssh-keygen -R" in str(refused.value)
    assert not (tmp_path / ".shipyard" / "known_hosts").exists()


def test_accept_new_records_the_key_and_trusts_it_from_then_on(hosts: Fleet, tmp_path: Path):
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    assert uname(hosts, tmp_path, known_hosts=str(empty), accept_new=True).ok
    own = tmp_path / ".shipyard" / "known_hosts"
    recorded = own.read_text()
    assert recorded == f"{hosts.hosts[0].address} {hosts.host_key(hosts.hosts[0].name)}\n"
    assert oct(own.stat().st_mode & 0o777) == "0o600"
    assert uname(hosts, tmp_path, known_hosts=str(empty), accept_new=False).ok
    assert own.read_text() == recorded


def test_a_key_the_host_does_not_accept_fails_authentication(hosts: Fleet, tmp_path: Path):
    stranger = tmp_path / "id_stranger"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(stranger)
    with pytest.raises(
        ConnectError, match=r"authentication failed: Permission denied for user root"
    ) as refused:
        uname(hosts, tmp_path, identity_file=str(stranger))
    assert "identity_file" in str(refused.value)


def test_an_address_nobody_listens_on_fails_at_once(hosts: Fleet, tmp_path: Path):
    start = time.monotonic()
    with pytest.raises(ConnectError, match=r"cannot connect to 127\..*: Connection refused"):
        uname(hosts, tmp_path, Host(address=hosts.silent_address()))
    assert time.monotonic() - start < 4  # generous: CI machines can be busy


@pytest.fixture
def silent_server(hosts: Fleet) -> Iterator[tuple[str, int]]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket() as server:
        server.bind((hosts.silent_address(), 0))
        server.listen(16)
        yield server.getsockname()


def test_a_host_that_never_answers_fails_within_the_connect_timeout(
    hosts: Fleet, tmp_path: Path, silent_server: tuple[str, int]
):
    address, port = silent_server
    start = time.monotonic()
    with pytest.raises(ConnectError, match=r"no SSH answer from .* within 1 s"):
        uname(hosts, tmp_path, Host(address=address, port=port), connect_timeout=1.0)
    assert time.monotonic() - start < 4  # generous: CI machines can be busy


def test_proxy_jump_in_ssh_config_is_honoured(hosts: Fleet, tmp_path: Path):
    jump, target = hosts.hosts[0], hosts.hosts[1]
    config = tmp_path / "ssh_config"
    config.write_text(
        f"Host behind-the-jump\n  HostName {target.address}\n  ProxyJump {jump.name}\n"
        + hosts.ssh_config.read_text()
    )
    known = tmp_path / "known_hosts"
    known.write_text(
        hosts.known_hosts.read_text() + f"behind-the-jump {hosts.host_key(target.name)}\n"
    )
    result = uname(
        hosts,
        tmp_path,
        Host(address="behind-the-jump"),
        config_file=str(config),
        known_hosts=str(known),
    )
    assert result.stdout == "Linux\n"
