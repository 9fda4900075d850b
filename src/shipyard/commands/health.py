"""Health probes run on the host: one attempt as argv; the caller loops over the attempts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from shipyard.commands.script import Argv, UnsafeValue, check_argv, check_text, join
from shipyard.config.models import HealthCheck

# One HTTP request with the standard library only (no curl on the host), the URL and the expected
# status read from argv so nothing is interpolated. No proxy from the environment (it would
# intercept loopback), no redirect followed (a 302 is an answer), the whole attempt bounded by
# SIGALRM. Prints the status it got; exit 0 when it is the expected one, 1 when not, 2 when none.
HTTP_PROBE = """\
import signal, sys, urllib.error, urllib.request
url, want, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
def give_up(*_):
    raise TimeoutError(f"no answer within {limit:g}s")
class Stay(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args, **_kwargs):
        return None
signal.signal(signal.SIGALRM, give_up)
signal.setitimer(signal.ITIMER_REAL, limit)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), Stay)
try:
    with opener.open(url, timeout=limit) as response:
        got = response.status
except urllib.error.HTTPError as error:
    got = error.code
except Exception as error:
    print(f"unhealthy: {url}: {error}", file=sys.stderr)
    sys.exit(2)
signal.setitimer(signal.ITIMER_REAL, 0)
print(got)
sys.exit(0 if got == want else 1)
"""
# What the executor should allow one attempt beyond its own timeout (interpreter start-up, SSH).
TIMEOUT_MARGIN = 2.0


@dataclass(frozen=True)
class HealthProbe:
    """One attempt (`argv`, exit 0 = healthy), how long it may take, and how to repeat it.

    Run `argv` up to `attempts` times, `interval` seconds apart, each with an executor timeout of
    `timeout + TIMEOUT_MARGIN`, until one exits 0.
    """

    argv: Argv
    timeout: float
    attempts: int
    interval: float
    description: str


def with_port(url: str, port: int) -> str:
    """`url` with its port replaced (a blue/green slot's port), user info and path kept."""
    if not 1 <= port <= 65535:
        raise UnsafeValue(f"port out of range: {port}")
    parts = urlsplit(url)
    if not parts.hostname:
        raise UnsafeValue(f"health check URL has no host: {url!r}")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    userinfo = parts.netloc.rpartition("@")[0]
    netloc = f"{userinfo}@{host}:{port}" if userinfo else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def http_probe_argv(
    url: str, expect_status: int, timeout: float, *, python: str = "python3"
) -> Argv:
    """One HTTP attempt on the host: exit 0 when `url` answers `expect_status` within `timeout`."""
    if urlsplit(url).scheme not in {"http", "https"}:
        raise UnsafeValue(f"health check URL must be http or https: {url!r}")
    check_text(url, "health check URL")
    return (python, "-I", "-c", HTTP_PROBE, url, str(expect_status), f"{timeout:g}")


def command_probe_argv(argv: Sequence[str], timeout: float) -> Argv:
    """One command attempt, killed on the host by coreutils `timeout` when too slow."""
    return ("timeout", "-k", "1", f"{timeout:g}", *check_argv(argv, "health check command"))


def probe_for(check: HealthCheck, *, port: int | None = None) -> HealthProbe:
    """The probe a service's health check describes; `port` retargets an HTTP check at a slot."""
    if check.http is not None:
        url = check.http if port is None else with_port(check.http, port)
        argv = http_probe_argv(url, check.expect_status, check.timeout)
        description = f"GET {url} answers {check.expect_status}"
    elif check.command is not None:
        argv = command_probe_argv(check.command, check.timeout)
        description = f"{join(check.command)} exits 0"
    else:  # the model refuses this; kept for type narrowing
        raise UnsafeValue("health check has neither http nor command")
    return HealthProbe(
        argv=argv,
        timeout=check.timeout,
        attempts=check.retries + 1,
        interval=check.interval,
        description=description,
    )


def parse_http_status(stdout: str) -> int | None:
    """The status an HTTP attempt printed; None when it got no answer."""
    text = stdout.strip()
    return int(text) if text.isdigit() else None
