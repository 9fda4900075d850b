"""A health check becomes one probe attempt as argv, with the URL passed as data, never as code."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from shipyard.commands.health import (
    HTTP_PROBE,
    HealthProbe,
    command_probe_argv,
    http_probe_argv,
    parse_http_status,
    probe_for,
    with_port,
)
from shipyard.commands.script import UnsafeValue
from shipyard.config.models import HealthCheck


@pytest.mark.parametrize(
    ("check", "port", "probe"),
    [
        pytest.param(
            HealthCheck(http="http://127.0.0.1:8000/health"),
            None,
            HealthProbe(
                argv=(
                    "python3",
                    "-I",
                    "-c",
                    HTTP_PROBE,
                    "http://127.0.0.1:8000/health",
                    "200",
                    "5",
                ),
                timeout=5.0,
                attempts=21,
                interval=0.5,
                description="GET http://127.0.0.1:8000/health answers 200",
            ),
            id="http-defaults",
        ),
        pytest.param(
            HealthCheck(
                http="http://127.0.0.1:8000/ready?x=1",
                expect_status=204,
                timeout=1.5,
                retries=0,
                interval=0,
            ),
            8001,
            HealthProbe(
                argv=(
                    "python3",
                    "-I",
                    "-c",
                    HTTP_PROBE,
                    "http://127.0.0.1:8001/ready?x=1",
                    "204",
                    "1.5",
                ),
                timeout=1.5,
                attempts=1,
                interval=0,
                description="GET http://127.0.0.1:8001/ready?x=1 answers 204",
            ),
            id="http-at-a-slot-port",
        ),
        pytest.param(
            HealthCheck(command=["test", "-S", "/run/app sock"], timeout=2, retries=3),
            None,
            HealthProbe(
                argv=("timeout", "-k", "1", "2", "test", "-S", "/run/app sock"),
                timeout=2.0,
                attempts=4,
                interval=0.5,
                description="test -S '/run/app sock' exits 0",
            ),
            id="command",
        ),
    ],
)
def test_a_health_check_becomes_a_probe(
    check: HealthCheck, port: int | None, probe: HealthProbe
) -> None:
    assert probe_for(check, port=port) == probe


def test_a_url_is_an_argument_of_the_probe_and_never_part_of_its_code() -> None:
    url = "http://127.0.0.1:1/'); import os; os.system('id') #"

    argv = http_probe_argv(url, 200, 1)

    assert argv[3] == HTTP_PROBE
    assert url not in argv[3]
    assert argv[4] == url


@pytest.mark.parametrize(
    ("url", "port", "expected"),
    [
        ("http://127.0.0.1:8000/health", 8001, "http://127.0.0.1:8001/health"),
        ("http://localhost/health", 9000, "http://localhost:9000/health"),
        ("https://u:p@example.test:443/x?y#z", 8443, "https://u:p@example.test:8443/x?y#z"),
        ("http://[::1]:80/", 81, "http://[::1]:81/"),
    ],
)
def test_a_url_is_retargeted_at_a_slot_port(url: str, port: int, expected: str) -> None:
    assert with_port(url, port) == expected


@pytest.mark.parametrize(
    "make",
    [
        lambda: http_probe_argv("ftp://127.0.0.1/", 200, 1),
        lambda: http_probe_argv("/health", 200, 1),
        lambda: with_port("http://127.0.0.1/", 70000),
        lambda: with_port("/no-host", 80),
        lambda: command_probe_argv([], 1),
    ],
    ids=["not-http", "no-scheme", "port-out-of-range", "no-host", "empty-command"],
)
def test_a_probe_it_could_not_run_is_refused(make: Callable[[], object]) -> None:
    with pytest.raises(UnsafeValue):
        make()


@pytest.mark.parametrize(("stdout", "status"), [("200\n", 200), ("503", 503), ("", None)])
def test_the_probe_output_is_read_as_the_status_it_got(stdout: str, status: int | None) -> None:
    assert parse_http_status(stdout) == status
