"""A host is resolved once: local or SSH, address, root, key, files and sudo; and selected by name."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config.models import Host, Project, SecretSource, SshSettings
from shipyard.config.topology import (
    DEFAULT_ROOT,
    HostAccess,
    all_hosts,
    is_local,
    project_path,
    resolve_host,
    select_hosts,
)
from shipyard.errors import UsageError

PROJECT = Path("/work/project")


@pytest.mark.parametrize(
    ("name", "host", "local"),
    [
        ("local", Host(), True),
        ("local", Host(connection="ssh"), False),
        ("box", Host(), False),
        ("box", Host(connection="local"), True),
        ("box", Host(connection="ssh", address="localhost"), False),
    ],
)
def test_a_host_is_local_when_it_says_so_or_is_named_local_and_says_nothing(
    name: str, host: Host, local: bool
) -> None:
    assert is_local(name, host) is local
    assert resolve_host(name, host, SshSettings(), PROJECT).local is local


@pytest.mark.parametrize(
    ("name", "host", "address", "root"),
    [
        ("web1", Host(), "web1", DEFAULT_ROOT),
        ("web1", Host(address="10.0.0.5", root="/opt/apps"), "10.0.0.5", "/opt/apps"),
        ("local", Host(), "localhost", str(PROJECT / ".shipyard/hosts/local")),
        ("box", Host(connection="local", root="/srv/x"), "localhost", "/srv/x"),
        ("box", Host(connection="local", root="work/box"), "localhost", str(PROJECT / "work/box")),
        # A relative root on an SSH host is the host's business (its login directory).
        ("web1", Host(root="apps"), "web1", "apps"),
    ],
)
def test_address_and_root_come_from_the_host_else_from_its_kind(
    name: str, host: Host, address: str, root: str
) -> None:
    access = resolve_host(name, host, SshSettings(), PROJECT)
    assert (access.address, access.root) == (address, root)


def test_a_host_overrides_the_projects_ssh_settings_and_paths_are_the_projects() -> None:
    ssh = SshSettings(
        user="deploy",
        port=2222,
        identity_file="keys/id_ed25519",
        config_file="ssh_config",
        known_hosts="/etc/fleet/known_hosts",
        sudo_password=SecretSource(env="SUDO_PASSWORD"),
    )
    plain = resolve_host("web1", Host(sudo=True), ssh, PROJECT)
    own = resolve_host("web2", Host(user="ops", port=22, identity_file="~/ops.key"), ssh, PROJECT)
    assert plain == HostAccess(
        name="web1",
        local=False,
        address="web1",
        root=DEFAULT_ROOT,
        sudo=True,
        port=2222,
        user="deploy",
        identity_file=PROJECT / "keys/id_ed25519",
        ssh_config=PROJECT / "ssh_config",
        known_hosts=Path("/etc/fleet/known_hosts"),
        sudo_password=SecretSource(env="SUDO_PASSWORD"),
    )
    assert (own.user, own.port, own.identity_file, own.sudo) == (
        "ops",
        22,
        Path("~/ops.key").expanduser(),
        False,
    )


def test_a_local_host_takes_no_ssh_login_and_shows_as_local() -> None:
    ssh = SshSettings(user="deploy", port=2222, identity_file="key")
    access = resolve_host("local", Host(), ssh, PROJECT)
    assert (access.port, access.user, access.identity_file) == (None, None, None)
    assert access.shown_address == "local"
    assert resolve_host("web1", Host(address="10.1.1.1"), ssh, PROJECT).shown_address == "10.1.1.1"


def test_an_unset_ssh_file_is_left_to_the_users_defaults() -> None:
    access = resolve_host("web1", Host(), SshSettings(), PROJECT)
    assert (access.ssh_config, access.known_hosts, access.identity_file) == (None, None, None)


@pytest.mark.parametrize(
    ("value", "path"),
    [
        ("secret.txt", PROJECT / "secret.txt"),
        ("/etc/shipyard/pw", Path("/etc/shipyard/pw")),
        ("~/pw", Path("~/pw").expanduser()),
    ],
)
def test_a_path_in_the_project_file_is_relative_to_the_project(value: str, path: Path) -> None:
    assert project_path(value, PROJECT) == path


def test_a_host_ref_answers_with_the_same_resolution() -> None:
    ref = all_hosts(fleet())["local"]
    ssh = SshSettings()
    assert (ref.is_local, ref.address, ref.root(PROJECT)) == (
        True,
        "localhost",
        str(PROJECT / ".shipyard/hosts/local"),
    )
    assert ref.access(ssh, PROJECT) == resolve_host("local", ref.host, ssh, PROJECT)


def fleet() -> Project:
    return Project.model_validate(
        {
            "sites": {
                "east": {
                    "hosts": {
                        "web1": {"labels": ["web"]},
                        "web2": {"labels": ["web", "canary"]},
                        "db1": {"labels": ["db"]},
                    }
                },
                "west": {"hosts": {"web3": {"labels": ["web"]}, "local": {}}},
            },
            "services": {},
        }
    )


@pytest.mark.parametrize(
    ("selection", "chosen"),
    [
        ({}, ["web1", "web2", "db1", "web3", "local"]),
        ({"sites": ["west"]}, ["web3", "local"]),
        ({"labels": ["web"]}, ["web1", "web2", "web3"]),
        ({"labels": ["db", "canary"]}, ["web2", "db1"]),
        ({"sites": ["east"], "labels": ["web"]}, ["web1", "web2"]),
        ({"hosts": ["web3", "db1"]}, ["db1", "web3"]),
        ({"sites": ["east", "west"], "hosts": ["local"]}, ["local"]),
    ],
)
def test_hosts_are_selected_by_every_filter_given_in_declaration_order(
    selection: dict[str, list[str]], chosen: list[str]
) -> None:
    selected = select_hosts(fleet(), **selection)
    assert list(selected) == chosen
    assert all(ref.name == name for name, ref in selected.items())


@pytest.mark.parametrize(
    ("selection", "message"),
    [
        ({"sites": ["eats"]}, 'unknown site "eats" (did you mean east?)'),
        ({"sites": ["north"]}, 'unknown site "north"'),
        ({"hosts": ["web4"]}, 'unknown host "web4" (did you mean web3, web2, web1?)'),
        ({"labels": ["cache"]}, "no host matches the selection"),
        ({"sites": ["west"], "labels": ["db"]}, "no host matches the selection"),
    ],
)
def test_a_selection_naming_nothing_is_refused_with_the_closest_names(
    selection: dict[str, list[str]], message: str
) -> None:
    with pytest.raises(UsageError) as refused:
        select_hosts(fleet(), **selection)
    assert str(refused.value) == message
