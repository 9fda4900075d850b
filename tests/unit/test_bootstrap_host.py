"""bootstrap_host runs commands.bootstrap's steps in order and reports a host's trouble as data
(with the fake executor: what it runs, not how a host answers, is under test here)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from shipyard.commands.script import Script
from shipyard.config.models import Host
from shipyard.config.topology import HostRef
from shipyard.deploy.bootstrap import HostReport, bootstrap_host
from shipyard.executors.fake import FakeExecutor

PROJECT = Path("/work/project")


def bootstrap(fake: FakeExecutor, host: Host, *, needs_nginx: bool = False) -> HostReport:
    ref = HostRef(fake.name, "east", host)
    return asyncio.run(bootstrap_host(fake, ref, PROJECT, needs_nginx=needs_nginx))


def steps(fake: FakeExecutor) -> list[str]:
    """What ran, in order: a script by its name, argv by its first words, uploads by path."""
    out = []
    for call in fake.calls:
        if call.method == "put":
            out.append(f"put {call.path}")
        elif isinstance(call.command, Script):
            out.append(call.command.name)
        elif call.command is not None:
            out.append(" ".join(call.command[:2]))
    return out


def test_a_host_whose_supervisord_is_down_gets_its_config_and_a_started_supervisord() -> None:
    fake = FakeExecutor("web1")
    fake.reply("check host", stdout="made root\nfound writable root\nsupervisord down\n")
    fake.reply("start supervisord", stdout="started supervisord\n")

    report = bootstrap(fake, Host())

    conf = "/srv/shipyard/supervisor/supervisord.conf"
    assert steps(fake) == ["check host", f"put {conf}", "start supervisord"]
    assert report == HostReport(
        "web1",
        found=["found writable root"],
        did=["made root", f"wrote {conf}", "started supervisord"],
    )
    assert all(call.timeout for call in fake.calls if call.method == "run")  # host step limits


def test_a_prepared_host_is_only_checked() -> None:
    fake = FakeExecutor("web1")
    fake.reply("check host", stdout="found root\nfound writable root\nfound supervisord running\n")

    report = bootstrap(fake, Host())

    assert steps(fake) == ["check host"]
    assert (report.did, report.error) == ([], "")


def test_a_systemd_host_is_checked_and_never_gets_a_supervisord() -> None:
    fake = FakeExecutor("web1")
    fake.reply("check", stdout="found writable root\nfound systemd 252\nsupervisord down\n")

    report = bootstrap(fake, Host(supervisor="systemd"))

    assert steps(fake) == ["check"]
    assert report.found == ["found writable root", "found systemd 252"]


def test_a_host_that_needs_nginx_gets_its_own_started_under_its_root() -> None:
    fake = FakeExecutor("web1")
    fake.reply("check host", stdout="found supervisord running\n")
    fake.reply(("id", "-un"), stdout="root\n")
    fake.reply("start nginx", stdout="started nginx\n")

    report = bootstrap(fake, Host.model_validate({"nginx": {"managed": True}}), needs_nginx=True)

    conf = "/srv/shipyard/nginx/nginx.conf"
    assert steps(fake) == ["check host", "id -un", "mkdir -p", f"put {conf}", "start nginx"]
    assert b"user root;" in fake.files[conf]
    assert report.did == ["started nginx"]


def test_a_system_nginx_is_only_checked_and_its_failure_reported() -> None:
    fake = FakeExecutor("web1")
    fake.reply(("nginx", "-t"), exit_status=1, stderr="nginx: [emerg] unknown directive\n")

    report = bootstrap(fake, Host(), needs_nginx=True)

    assert steps(fake)[-1] == "nginx -t"
    assert report.error == "nginx check `nginx -t` failed: nginx: [emerg] unknown directive"


def test_a_failing_check_is_the_hosts_error_not_an_exception() -> None:
    fake = FakeExecutor("web1")
    fake.reply("check host", exit_status=1, stderr="supervisord not installed\n")

    report = bootstrap(fake, Host())

    assert steps(fake) == ["check host"]
    assert "supervisord not installed" in report.error


def test_a_local_host_is_prepared_in_the_project_directory() -> None:
    fake = FakeExecutor("local")
    fake.reply("check host", stdout="supervisord down\n")

    bootstrap(fake, Host())

    check = fake.commands[0]
    assert isinstance(check, Script)
    assert f"root={PROJECT}/.shipyard/hosts/local" in check.text
    assert f"put {PROJECT}/.shipyard/hosts/local/supervisor/supervisord.conf" in steps(fake)
