"""The generated configs work for real: supervisord, nginx, systemd's parser, the health probes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from shipyard.commands import health, nginx, supervisor, systemd
from shipyard.commands.release import ReleaseLayout
from shipyard.commands.script import Script

pytestmark = pytest.mark.integration

# Values that break naive quoting, all of which supervisord's own format can carry.
CARRIED = [
    "two words",
    "naïve ✓",
    "it's",
    'say "hi" now',
    "$HOME",
    "100% %(ENV_HOME)s",
    "a,b=c",
    "x;y#z",
    "",
]
# Values only a launcher can carry.
LAUNCHED = ["line one\nline two", "both ' and \"", "'quoted'", "a ;b", "at %(here)s"]
# One line, so that supervisord's format can carry it.
DUMP = (
    "import json, os, sys, time; out = sys.argv[1]; "
    "open(out + '.tmp', 'w').write(json.dumps([sys.argv[2:], os.getcwd(), dict(os.environ)])); "
    "os.rename(out + '.tmp', out); time.sleep(600)"
)


def run(argv: Sequence[str] | Script) -> subprocess.CompletedProcess[str]:
    argv = argv.argv if isinstance(argv, Script) else argv
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_process(argv: Sequence[str], request: pytest.FixtureRequest) -> subprocess.Popen[bytes]:
    """Start a daemon in the foreground; the finalizer stops it by its PID only."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop() -> None:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()

    request.addfinalizer(stop)
    return process


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def supervisord(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> supervisor.SupervisorPaths:
    """A running supervisord of its own, as one fleet host has (`%` in its path on purpose)."""
    if shutil.which("supervisord") is None:
        pytest.skip("supervisord is not installed")
    base = tmp_path_factory.mktemp("sup") / "100%"
    paths = supervisor.SupervisorPaths(str(base))
    Path(paths.programs).mkdir(parents=True)
    Path(paths.conf).write_text(supervisor.render_supervisord_conf(paths))
    start_process(supervisor.supervisord_argv(paths.conf, foreground=True), request)
    wait_for(lambda: run(supervisor.status_argv(paths.conf)).returncode == 0, "supervisord")
    return paths


def write(files: dict[str, str]) -> None:
    for path, content in files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(content)


def states(paths: supervisor.SupervisorPaths) -> dict[str, str]:
    return supervisor.parse_status(run(supervisor.status_argv(paths.conf)).stdout.splitlines())


@pytest.mark.parametrize("values", [CARRIED, LAUNCHED], ids=["in-program-file", "via-launcher"])
def test_supervisord_runs_a_program_with_exactly_its_argv_environment_and_directory(
    supervisord: supervisor.SupervisorPaths, tmp_path: Path, values: list[str]
) -> None:
    layout = ReleaseLayout(str(tmp_path), "api")
    workdir = tmp_path / "release dir"
    workdir.mkdir()
    out = tmp_path / "dump.json"
    env = {f"V{i}": value for i, value in enumerate(values)}
    argv = [sys.executable, "-c", DUMP, str(out), *values]
    files = supervisor.program_files(
        supervisord, "api", argv=argv, directory=str(workdir), env=env, logs_dir=layout.logs
    )
    assert (supervisord.launcher("api") in files) == (values is LAUNCHED)
    write(files)
    Path(layout.logs).mkdir(parents=True)

    assert run(supervisor.reread_argv(supervisord.conf)).returncode == 0
    assert run(supervisor.update_argv(supervisord.conf, "api")).returncode == 0
    wait_for(out.exists, "the program to start")
    wait_for(lambda: states(supervisord) == {"api": "RUNNING"}, "the program to be RUNNING")

    got_argv, cwd, environ = json.loads(out.read_text())
    assert got_argv == values
    assert cwd == str(workdir)
    assert {name: environ[name] for name in env} == env


def test_supervisorctl_stops_restarts_and_reports_a_program(
    supervisord: supervisor.SupervisorPaths, tmp_path: Path
) -> None:
    conf = supervisord.conf
    files = supervisor.program_files(
        supervisord,
        "api-blue",
        argv=["sleep", "600"],
        directory=str(tmp_path),
        env={},
        logs_dir=str(tmp_path),
        start_seconds=0,
    )
    write(files)
    run(supervisor.reread_argv(conf))
    run(supervisor.update_argv(conf, "api-blue"))
    wait_for(lambda: states(supervisord).get("api-blue") == "RUNNING", "api-blue running")

    assert run(supervisor.stop_argv(conf, "api-blue")).returncode == 0
    assert states(supervisord) == {"api-blue": "STOPPED"}
    assert run(supervisor.restart_argv(conf, "api-blue")).returncode == 0
    assert states(supervisord) == {"api-blue": "RUNNING"}
    unknown = run(supervisor.status_argv(conf, "nope"))
    assert unknown.returncode != 0
    assert supervisor.parse_status(unknown.stdout.splitlines()) == {}


class Answer(BaseHTTPRequestHandler):
    """Answers with the server's `name`; /status/N answers N; /slow waits 3 s."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        if self.path == "/slow":
            time.sleep(3)
        code = int(self.path.rsplit("/", 1)[1]) if self.path.startswith("/status/") else 200
        assert isinstance(self.server, Server)
        body = self.server.name.encode()
        self.send_response(code)
        if code == 302:
            self.send_header("Location", "/status/200")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    name = ""

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that give up (a probe past its timeout) are expected here: stay quiet."""


@pytest.fixture
def backend() -> Iterator[Callable[[str], int]]:
    """Starts loopback HTTP servers answering their name; returns their ports."""
    servers: list[Server] = []

    def start(name: str) -> int:
        server = Server(("127.0.0.1", 0), Answer)
        server.name = name
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def accepts(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as response:
        return str(response.read().decode())


def test_nginx_switches_a_service_between_slots_and_the_old_slot_drains(
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
    backend: Callable[[str], int],
) -> None:
    if shutil.which("nginx") is None and not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx is not installed")
    paths = nginx.NginxPaths(str(tmp_path_factory.mktemp("ngx") / "host one"))
    Path(paths.conf_dir).mkdir(parents=True)
    Path(paths.conf).write_text(nginx.render_main_conf(paths, listen=[f"127.0.0.1:{free_port()}"]))
    settings = paths.settings()
    blue, green, front = backend("blue"), backend("green"), free_port()
    site = nginx.site_path(settings.conf_dir, "api")

    def switch(port: int) -> subprocess.CompletedProcess[str]:
        content = nginx.render_site("api", listen=f"127.0.0.1:{front}", port=port)
        return run(nginx.apply_site_script(site, content, test=settings.test, reload=[":"]))

    def reload() -> None:
        assert run(settings.reload).returncode == 0

    def connections(port: int) -> int:
        return nginx.count_established(run(nginx.established_argv(port)).stdout)

    assert switch(blue).returncode == 0
    start_process(nginx.start_argv(paths.conf, error_log=paths.error_log, foreground=True), request)
    # Not the pid file: `nginx -t` leaves an empty one behind.
    wait_for(lambda: accepts(front), "nginx to listen")
    assert get(f"http://127.0.0.1:{front}/") == "blue"
    assert connections(blue) >= 1  # nginx keeps its upstream connection alive

    assert switch(green).returncode == 0
    reload()
    wait_for(lambda: get(f"http://127.0.0.1:{front}/") == "green", "nginx to serve green")
    wait_for(lambda: connections(blue) == 0, "the blue slot to drain")

    refused = run(nginx.apply_site_script(site, "not nginx", test=settings.test, reload=[":"]))
    assert refused.returncode == 3
    reload()
    assert get(f"http://127.0.0.1:{front}/") == "green"
    assert Path(site).read_text() == nginx.render_site(
        "api", listen=f"127.0.0.1:{front}", port=green
    )


@pytest.mark.parametrize(
    ("path", "expect", "status", "exit_code"),
    [
        ("/status/200", 200, "200", 0),
        ("/status/500", 200, "500", 1),
        ("/status/302", 302, "302", 0),
        ("/status/404", 404, "404", 0),
    ],
)
def test_an_http_probe_exits_zero_only_for_the_expected_status(
    backend: Callable[[str], int], path: str, expect: int, status: str, exit_code: int
) -> None:
    port = backend("app")

    result = run(health.http_probe_argv(f"http://127.0.0.1:{port}{path}", expect, 5))

    assert (result.returncode, result.stdout.strip()) == (exit_code, status)


def test_an_http_probe_gives_up_within_its_timeout(backend: Callable[[str], int]) -> None:
    port = backend("app")
    started = time.monotonic()

    slow = run(health.http_probe_argv(f"http://127.0.0.1:{port}/slow", 200, 0.5))
    closed = run(health.http_probe_argv(f"http://127.0.0.1:{free_port()}/", 200, 0.5))

    assert slow.returncode == 2
    assert "unhealthy" in slow.stderr
    assert closed.returncode == 2
    assert time.monotonic() - started < 2.9


def test_a_command_probe_is_killed_on_the_host_when_it_takes_too_long() -> None:
    started = time.monotonic()

    result = run(health.command_probe_argv(["sleep", "5"], 0.3))

    assert result.returncode == 124
    assert time.monotonic() - started < 2


def test_systemd_accepts_a_unit_with_awkward_values(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    unit = tmp_path / systemd.unit_name("api")
    values = [*CARRIED, *LAUNCHED, "tab\there", "back\\slash"]
    unit.write_text(
        systemd.render_unit(
            "api on h1 (100%)",
            argv=["/bin/echo", *values],
            directory=str(tmp_path),
            env={f"V{i}": v for i, v in enumerate(values)},
        )
    )

    result = run(["systemd-analyze", "verify", str(unit)])

    assert result.returncode == 0, result.stderr
    assert str(unit) not in result.stderr


def pids(paths: supervisor.SupervisorPaths) -> dict[str, int]:
    listing = run(supervisor.status_argv(paths.conf)).stdout.splitlines()
    return {
        line.split()[0]: int(line.split("pid ")[1].split(",")[0])
        for line in listing
        if "pid " in line
    }


def test_one_rpc_call_adds_replaces_and_restarts_programs_without_waiting(
    supervisord: supervisor.SupervisorPaths, tmp_path: Path
) -> None:
    def program(name: str, seconds: str) -> dict[str, str]:
        return supervisor.program_files(
            supervisord,
            name,
            argv=["sleep", seconds],
            directory=str(tmp_path),
            env={},
            logs_dir=str(tmp_path),
            start_seconds=1,
        )

    write({**program("alpha", "600"), **program("beta", "600")})
    apply = supervisor.apply_programs_script(supervisord, [("alpha", None), ("beta", None)])
    added = run(apply)

    assert added.returncode == 0, added.stderr
    assert added.stdout.splitlines() == ["alpha: added", "beta: added"]
    wait_for(lambda: states(supervisord) == {"alpha": "RUNNING", "beta": "RUNNING"}, "running")
    before = pids(supervisord)

    write(program("alpha", "601"))  # alpha's file changes, beta's does not
    again = run(apply)

    assert again.stdout.splitlines() == ["alpha: updated", "beta: restarted"]
    wait_for(lambda: states(supervisord) == {"alpha": "RUNNING", "beta": "RUNNING"}, "back")
    after = pids(supervisord)
    assert after["alpha"] != before["alpha"]
    assert after["beta"] != before["beta"]
    status = run(supervisor.rpc_argv(supervisord.conf, "status", "alpha"))
    assert status.stdout == "alpha RUNNING\n"


def test_the_rpc_helper_names_the_supervisord_it_could_not_reach(tmp_path: Path) -> None:
    paths = supervisor.SupervisorPaths(str(tmp_path / "gone"))
    Path(paths.base_dir).mkdir()
    Path(paths.conf).write_text(supervisor.render_supervisord_conf(paths))

    done = run(supervisor.rpc_argv(paths.conf, "status", "alpha"))

    assert done.returncode == 1
    assert paths.socket in done.stderr


def test_the_rpc_helper_says_why_a_program_could_not_start(
    supervisord: supervisor.SupervisorPaths, tmp_path: Path
) -> None:
    files = supervisor.program_files(
        supervisord,
        "broken",
        argv=["shipyard-no-such-command", "--flag"],
        directory=str(tmp_path),
        env={},
        logs_dir=str(tmp_path),
    )
    write(files)
    assert run(supervisor.apply_programs_script(supervisord, [("broken", None)])).returncode == 0
    status = supervisor.rpc_argv(supervisord.conf, "status", "broken")
    wait_for(lambda: "FATAL" in run(status).stdout, "the program to be FATAL", timeout=60)

    lines = run(status).stdout.splitlines()

    assert supervisor.parse_status(lines) == {"broken": "FATAL"}
    assert supervisor.parse_status_reasons(lines) == {
        "broken": "can't find command 'shipyard-no-such-command'"
    }
