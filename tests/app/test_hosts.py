"""Use cases on hosts, in-process, on the local host: bootstrap, run a command, check hosts."""

from __future__ import annotations

import asyncio

from shipyard.app.hosts import bootstrap, check_hosts, hosts_needing_nginx, run_on_hosts
from shipyard.app.session import Session


def test_bootstrap_prepares_the_host_and_a_second_run_finds_it_ready(booted: Session) -> None:
    [again] = asyncio.run(bootstrap(booted))
    assert again.error == ""
    assert again.did == ()  # everything is found the second time
    assert any("supervisord" in line for line in again.found), again.found
    assert hosts_needing_nginx(booted) == set()  # a restart strategy: no slots, no nginx


def test_run_reports_each_host_output_and_exit_status(session: Session) -> None:
    told: list[bool] = []
    [ok] = asyncio.run(run_on_hosts(session, ["echo", "hello"], progress=told.append))
    assert (ok.host, ok.ok, ok.exit_status, ok.first_line) == ("local", True, 0, "hello")
    [bad] = asyncio.run(run_on_hosts(session, ["sh", "-c", "echo oops >&2; exit 3"]))
    assert (bad.ok, bad.failure) == (False, "exit status 3: oops")
    assert told == [True]
    assert bad.to_json()["exit_status"] == 3


def test_hosts_are_listed_with_their_address_and_reachability(session: Session) -> None:
    [host] = asyncio.run(check_hosts(session))
    assert (host.host, host.site, host.address, host.reachable) == ("local", "dev", "local", True)
