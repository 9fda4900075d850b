"""Each host's supervisor is chosen from its settings, and both kinds answer in the same words."""

from __future__ import annotations

import pytest

from shipyard.commands import supervisor, systemd
from shipyard.commands.control import (
    HEALTH_FILE,
    LAUNCHER_FILE,
    PROGRAM_FILE,
    UNIT_FILE,
    Program,
    Supervisord,
    Systemd,
    control_for,
    supervisor_paths,
)
from shipyard.config.models import Host
from shipyard.config.topology import HostRef


def ref(**host: object) -> HostRef:
    return HostRef("web1", "east", Host.model_validate(host))


@pytest.mark.parametrize(
    ("host", "control"),
    [
        ({}, Supervisord(supervisor.SupervisorPaths("/srv/shipyard/supervisor"))),
        (
            {"supervisor_config": "/etc/supervisor/supervisord.conf"},
            Supervisord(supervisor.SupervisorPaths("/etc/supervisor")),
        ),
        ({"supervisor": "systemd"}, Systemd("/etc/systemd/system")),
        (
            {"supervisor": "systemd", "systemd_unit_dir": "/home/ops/.config/systemd/user"},
            Systemd("/home/ops/.config/systemd/user"),
        ),
    ],
)
def test_the_supervisor_follows_the_hosts_settings(host: dict[str, str], control: object) -> None:
    assert control_for(ref(**host), "/srv/shipyard/") == control


def test_a_hosts_own_supervisord_lives_under_its_root_unless_it_names_a_config() -> None:
    assert supervisor_paths(ref(), "/opt/root").conf == "/opt/root/supervisor/supervisord.conf"
    named = ref(supervisor_config="/etc/sv/supervisord.conf")
    assert supervisor_paths(named, "/opt/root").conf == "/etc/sv/supervisord.conf"


def program(**changes: object) -> Program:
    values: dict[str, object] = {
        "service": "api",
        "instance": "api@web1",
        "argv": ("venv/bin/gunicorn", "app:main"),
        "env": {"PORT": "8000"},
        "directory": "/srv/shipyard/api/current",
        "release_dir": "/srv/shipyard/api/releases/r1",
        "logs_dir": "/srv/shipyard/api/logs",
    }
    values.update(changes)
    return Program(**values)  # type: ignore[arg-type]


def test_a_supervisord_release_carries_its_program_file_private() -> None:
    files = Supervisord(supervisor.SupervisorPaths("/srv/shipyard/supervisor")).render(program())
    assert set(files) == {PROGRAM_FILE}
    text, mode = files[PROGRAM_FILE]
    assert mode == 0o600
    assert "command='/srv/shipyard/api/releases/r1/venv/bin/gunicorn' 'app:main'\n" in text
    assert "stdout_logfile=/srv/shipyard/api/logs/stdout.log" in text


def test_what_supervisord_cannot_carry_goes_through_a_private_launcher() -> None:
    control = Supervisord(supervisor.SupervisorPaths("/srv/shipyard/supervisor"))
    files = control.render(program(env={"TOKEN": "two\nlines"}))
    assert set(files) == {PROGRAM_FILE, LAUNCHER_FILE}
    assert files[LAUNCHER_FILE][1] == 0o700
    assert f"/srv/shipyard/api/releases/r1/{LAUNCHER_FILE}" in files[PROGRAM_FILE][0]
    assert "two\nlines" not in files[PROGRAM_FILE][0]


def test_a_systemd_release_carries_its_unit_private() -> None:
    files = Systemd("/etc/systemd/system").render(program())
    assert set(files) == {UNIT_FILE}
    text, mode = files[UNIT_FILE]
    assert mode == 0o600
    assert "Description=Shipyard api@web1" in text


@pytest.mark.parametrize(
    ("control", "name", "stop", "settle"),
    [
        (
            Supervisord(supervisor.SupervisorPaths("/s/supervisor")),
            "api",
            ("supervisorctl", "-c", "/s/supervisor/supervisord.conf", "stop", "api"),
            1.0,
        ),
        (
            Systemd("/etc/systemd/system"),
            "shipyard-api.service",
            ("systemctl", "stop", "shipyard-api.service"),
            0.0,
        ),
    ],
)
def test_both_supervisors_name_stop_and_settle_their_programs(
    control: Supervisord | Systemd, name: str, stop: tuple[str, ...], settle: float
) -> None:
    assert control.name("api") == name
    assert control.stop([name]) == stop
    assert control.settle == settle
    assert control.status([name]).text.rstrip().endswith(name)


def test_systemd_states_read_in_supervisord_words() -> None:
    units = [systemd.unit_name("api"), systemd.unit_name("web")]
    control = Systemd("/etc/systemd/system")
    assert control.states("active\nfailed\n", units) == {
        units[0]: "RUNNING",
        units[1]: "FATAL",
    }
    assert control.reasons("failed\n", units) == {}


def test_the_health_file_is_kept_inside_the_release_metadata() -> None:
    assert HEALTH_FILE.startswith(".shipyard/")
