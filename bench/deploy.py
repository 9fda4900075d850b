"""Benchmark: deploying services to a real SSH fleet, Shipyard against Ansible and pyinfra.

Starts a fleet of real sshd hosts on loopback (tests/fleet.py, the code behind scripts/fleet) in
bench/.work/deploy, runs `shipyard bootstrap` once (each host gets its own supervisord), then on
every run and for every tool, from a clean slate:

    first    the first deploy of S services to each of the H hosts (H x S instances)
    no-op    the same deploy again: nothing changed, nothing may be touched
    change   (Shipyard) a redeploy after a one-value change to the template of one service:
             only that service's H instances may be touched

A service is `sleep infinity` under the host's supervisord with a command health check, so the
figures measure orchestration, not the start-up of a service. Shipyard runs as the CLI
(`shipyard deploy --json`) with a fresh state database for each first deploy; Ansible
(bench/deploy_ansible/deploy.yml) and pyinfra (bench/deploy_pyinfra.py) do the same work on the
same hosts, each from its own virtualenv, into its own deploy root (<host root>/<tool>) with its
own program names, under the same supervisord. Their release archives (artifact + rendered
config, what Shipyard stages itself while timed) are built before the clock starts. After each
step the hosts are checked: every program RUNNING; for a no-op and for the change, which
programs got a new process (by pid, through each supervisord's XML-RPC socket).

Besides the wall clock, each step's CPU time is reported: the tool's own processes (controller)
and the hosts' (every SSH session and what it ran, read from the fleet sshd daemons' reaped
children, plus each supervisord). On a shared 2-core machine the CPU seconds vary less than the
wall clock, so both are printed, with the load average.

Goals at H = 50, S = 20 (1,000 instances): the first deploy at least 2x faster than pyinfra and
10x faster than Ansible; the no-op under 2 s; the change touches only the instances it affects.

    .venv/bin/python bench/deploy.py [--hosts 50] [--services 20] [--runs 3]
                                     [--tools shipyard,pyinfra,ansible] [--timeout 3600]
                                     [--markdown] [--keep-fleet]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import http.client
import io
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
import xmlrpc.client
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import jinja2
import yaml

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent / "tests"))
sys.path.insert(0, str(BENCH.parent / "tests" / "integration"))

import _tools  # noqa: E402
from _tools import REPO, Inputs, Target  # noqa: E402
from deploy_project import stop_supervisors  # noqa: E402

import fleet as fleet_lib  # noqa: E402

WORK = BENCH / ".work" / "deploy"
FLEET_DIR = WORK / "fleet"
PROJECT_DIR = WORK / "project"
RIVALS_DIR = WORK / "rivals"
TOOLS = ("shipyard", "pyinfra", "ansible")
LABELS = {"shipyard": "Shipyard", "pyinfra": "pyinfra", "ansible": "Ansible"}
PROGRAM_PREFIX = {"shipyard": "", "pyinfra": "pyinfra-", "ansible": "ansible-"}
STEPS = {
    "first": "first deploy",
    "noop": "no-op redeploy",
    "change": "one-value change to one template",
}
GOAL_HOSTS, GOAL_SERVICES = 50, 20
GOAL_FASTER = {"pyinfra": 2.0, "ansible": 10.0}
GOAL_NOOP_SECONDS = 2.0
SETTLE_SECONDS = 20.0  # how long a program may stay STARTING after a deploy returned

CONFIG_TEMPLATE = "service={{ service }}\ngreeting={{ greeting }}\nworkers={{ workers }}\n"
APP_FILES = {
    "README.txt": "A stand-in service for bench/deploy.py: supervisord runs `sleep infinity`.\n",
    "lib/data.txt": "payload\n" * 64,
    "VERSION": "1\n",
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the scenario -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    hosts: int
    services: int

    @property
    def names(self) -> list[str]:
        return [f"svc{i + 1:02d}" for i in range(self.services)]

    @property
    def changed(self) -> str:
        """The service whose template gets the one-value change."""
        return self.names[len(self.names) // 2]

    def values(self, name: str, *, changed: bool = False) -> dict[str, object]:
        workers = 3 if changed and name == self.changed else 2
        return {"greeting": f"hello from {name}", "workers": workers}


def write_project(
    fleet: fleet_lib.Fleet, scenario: Scenario, *, changed: bool = False, health_timeout: float = 5
) -> None:
    """The Shipyard project: a base template, one template per service extending it. Each
    health check attempt gets `health_timeout` seconds (more where the fleet is given only the
    CPU that others leave: bench/server.py's `background`)."""
    PROJECT_DIR.mkdir(parents=True, exist_ok=True)
    for relative, text in APP_FILES.items():
        (PROJECT_DIR / "app" / relative).parent.mkdir(parents=True, exist_ok=True)
        (PROJECT_DIR / "app" / relative).write_text(text)
    (PROJECT_DIR / "config.txt.j2").write_text(CONFIG_TEMPLATE)
    document = yaml.safe_load(fleet.project_file.read_text())
    document["name"] = "deploybench"
    for host in document["sites"]["fleet"]["hosts"].values():
        host["root"] = f"{host['root']}/shipyard"  # the supervisor_config stays where it is
    base = {
        "artifact": {"path": "app"},
        "files": {"config.txt": "config.txt.j2"},
        "commands": {"start": ["sleep", "infinity"]},
        "env": {"SERVICE": "{{ service }}"},
        "health": {
            "command": ["test", "-f", "{{ host.root }}/{{ service }}/current/config.txt"],
            "timeout": health_timeout,
            "retries": 20,
            "interval": 0.2,
        },
    }
    templates: dict[str, object] = {"base": base}
    services: dict[str, object] = {}
    for name in scenario.names:
        templates[name] = {"extends": "base", "vars": scenario.values(name, changed=changed)}
        services[name] = {"template": name, "sites": ["fleet"]}
    document["templates"] = templates
    document["services"] = services
    (PROJECT_DIR / "shipyard.yaml").write_text(yaml.safe_dump(document, sort_keys=False))


def write_rival_inputs(fleet: fleet_lib.Fleet, scenario: Scenario) -> Inputs:
    """Release archives (artifact + rendered config, as Shipyard's releases hold) and the
    inventories, ansible.cfg and spec the other tools read."""
    releases = RIVALS_DIR / "releases"
    releases.mkdir(parents=True, exist_ok=True)
    render = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(CONFIG_TEMPLATE)
    services = []
    for name in scenario.names:
        files = {**APP_FILES, "config.txt": render.render(service=name, **scenario.values(name))}
        data = _tar_gz(files)
        rev = hashlib.sha256(data).hexdigest()[:16]
        archive = releases / f"{name}-{rev}.tar.gz"
        archive.write_bytes(data)
        services.append({"name": name, "rev": rev, "archive": str(archive)})
    spec = RIVALS_DIR / "deploy-spec.json"
    spec.write_text(json.dumps({"services": services}, indent=1) + "\n")
    inputs = Inputs(
        dir=RIVALS_DIR,
        # The tools' inventories carry `bench_dest`: here the host's root directory.
        targets=[Target(h.name, h.address, h.root) for h in fleet.hosts],
        ssh_config=fleet.ssh_config,
        identity_file=fleet.identity_file,
        known_hosts=fleet.known_hosts,
        blob=Path(services[0]["archive"]),
        project_file=PROJECT_DIR / "shipyard.yaml",
        extra={"spec": spec},
    )
    _tools.write_inputs(inputs)
    return inputs


def _tar_gz(files: dict[str, str]) -> bytes:
    """A reproducible .tar.gz of `files` (same bytes for the same content)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for relative, text in sorted(files.items()):
            data = text.encode()
            info = tarfile.TarInfo(relative)
            info.size, info.mode, info.mtime = len(data), 0o644, 0
            tar.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


# --- each host's supervisord, through its XML-RPC socket (no process per question) --------------


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        sock.connect(self._path)
        self.sock = sock


class _UnixTransport(xmlrpc.client.Transport):
    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def make_connection(self, host: object) -> http.client.HTTPConnection:
        return _UnixConnection(self._path)


def supervisor(host: fleet_lib.FleetHost) -> Any:
    """The `supervisor` namespace of this host's supervisord's XML-RPC interface."""
    path = f"{host.root}/supervisor/supervisor.sock"
    return xmlrpc.client.ServerProxy("http://localhost", transport=_UnixTransport(path)).supervisor


def process_info(host: fleet_lib.FleetHost) -> list[dict[str, Any]]:
    return cast(list[dict[str, Any]], supervisor(host).getAllProcessInfo())


def tool_of(program: str) -> str:
    for tool in ("pyinfra", "ansible"):
        if program.startswith(PROGRAM_PREFIX[tool]):
            return tool
    return "shipyard"


def programs(fleet: fleet_lib.Fleet, tool: str) -> dict[str, tuple[str, int]]:
    """`program@host` -> (state, pid) for every program of `tool` on every host."""
    found = {}
    for host in fleet.hosts:
        for info in process_info(host):
            if tool_of(info["name"]) == tool:
                found[f"{info['name']}@{host.name}"] = (info["statename"], info["pid"])
    return found


def settled(fleet: fleet_lib.Fleet, tool: str, expected: int) -> dict[str, tuple[str, int]]:
    """The programs of `tool` once none is STARTING any more (bounded); checks they all run."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        found = programs(fleet, tool)
        if not any(state == "STARTING" for state, _ in found.values()):
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    bad = {name: state for name, (state, _) in found.items() if state != "RUNNING"}
    if bad or len(found) != expected:
        sample = dict(list(bad.items())[:3])
        raise BenchFailure(
            f"{LABELS[tool]}: {len(found) - len(bad)}/{expected} programs RUNNING; e.g. {sample}"
        )
    return found


def clear_tool(fleet: fleet_lib.Fleet, tool: str) -> None:
    """Forget everything `tool` put on the hosts: its programs (stopped), files and releases."""
    with ThreadPoolExecutor(max_workers=len(fleet.hosts)) as pool:
        list(pool.map(lambda host: _clear_host(host, tool), fleet.hosts))
    if tool == "shipyard":
        shutil.rmtree(PROJECT_DIR / ".shipyard", ignore_errors=True)  # a fresh state database


def _clear_host(host: fleet_lib.FleetHost, tool: str) -> None:
    rpc = supervisor(host)
    groups = {i["group"] for i in process_info(host) if tool_of(i["name"]) == tool}
    # Stop without waiting: a waiting call costs a tick of supervisord's main loop (1 s) each.
    for group in groups:
        with contextlib.suppress(xmlrpc.client.Fault):
            rpc.stopProcessGroup(group, False)
    deadline = time.monotonic() + SETTLE_SECONDS
    while time.monotonic() < deadline:
        states = [i["statename"] for i in process_info(host) if i["group"] in groups]
        if not any(s in {"RUNNING", "STARTING", "STOPPING", "BACKOFF"} for s in states):
            break
        time.sleep(0.1)
    for group in groups:
        with contextlib.suppress(xmlrpc.client.Fault):
            rpc.removeProcessGroup(group)
    for conf in (Path(host.root) / "supervisor" / "programs").glob("*.conf"):
        if tool_of(conf.stem) == tool:
            conf.unlink()
    root = Path(host.root) / tool
    if root.exists():
        for child in root.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()


# --- running a tool -----------------------------------------------------------------------------


class BenchFailure(Exception):
    """A tool's run failed or left the hosts in the wrong state."""


@dataclass
class Ran:
    seconds: float
    cpu: float  # of the tool's own processes (those it waited for)
    stdout: str
    stderr: str


def run_timed(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float, tag: str) -> Ran:
    """Run a tool as a child in its own process group (killed by PID on timeout or Ctrl-C)."""
    logs = WORK / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
    (logs / f"{tag}.log").write_text(
        f"$ {' '.join(argv)}\n--- stdout\n{stdout}\n--- stderr\n{stderr}"
    )
    if process.returncode != 0:
        raise BenchFailure(
            f"{tag}: exit status {process.returncode} after {seconds:.1f} s "
            f"(output in {(logs / f'{tag}.log').relative_to(REPO)})"
        )
    return Ran(seconds, cpu, stdout, stderr)


def tool_env(**extra: str) -> dict[str, str]:
    """Our environment for a tool, without PYTHONDONTWRITEBYTECODE: as installed, Python caches
    compiled modules, and our editable source would otherwise be compiled on every run."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "COLUMNS": "200", **extra}


def shipyard_env() -> dict[str, str]:
    env = {k: v for k, v in tool_env().items() if not k.startswith("SHIPYARD_")}
    return {**env, "SHIPYARD_ACTOR": "bench"}


def shipyard_deploy(timeout: float, tag: str) -> tuple[Ran, dict[str, int]]:
    """`shipyard deploy --json`: its wall time and how many instances ended in each result."""
    shipyard = str(Path(sys.executable).parent / "shipyard")
    ran = run_timed(
        [shipyard, "deploy", "--json"],
        cwd=PROJECT_DIR,
        env=shipyard_env(),
        timeout=timeout,
        tag=tag,
    )
    counts: dict[str, int] = {}
    for outcome in json.loads(ran.stdout)["outcomes"]:
        counts[outcome["result"]] = counts.get(outcome["result"], 0) + 1
    return ran, counts


def rival_deploy(tool: str, inputs: Inputs, timeout: float, tag: str) -> Ran:
    spec = str(inputs.extra["spec"])
    if tool == "pyinfra":
        argv = [
            str(_tools.venv_bin("pyinfra") / "pyinfra"),
            "-y",
            "--parallel",
            str(len(inputs.targets)),
            str(inputs.dir / "pyinfra_inventory.py"),
            str(BENCH / "deploy_pyinfra.py"),
        ]
        env = tool_env(BENCH_DEPLOY_SPEC=spec)
        return run_timed(argv, cwd=inputs.dir, env=env, timeout=timeout, tag=tag)
    control = WORK / "cp" / tag  # Ansible's ControlMaster sockets: fresh per run, closed after
    control.mkdir(parents=True, exist_ok=True)
    argv = [
        str(_tools.venv_bin("ansible") / "ansible-playbook"),
        str(BENCH / "deploy_ansible" / "deploy.yml"),
        "-e",
        f"@{spec}",
    ]
    env = tool_env(**_tools.ansible_env(inputs, control))
    try:
        return run_timed(argv, cwd=inputs.dir, env=env, timeout=timeout, tag=tag)
    finally:
        _tools.close_control_masters(control)
        shutil.rmtree(control, ignore_errors=True)


# --- one round: every step of one tool ----------------------------------------------------------


@dataclass(frozen=True)
class Measured:
    """One timed step: wall clock, and the CPU it cost on the controller and on the hosts."""

    seconds: float
    controller_cpu: float
    hosts_cpu: float


@dataclass
class Results:
    measured: dict[tuple[str, str], list[Measured]] = field(default_factory=dict)
    failures: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    touched: list[int] = field(default_factory=list)
    loads: list[float] = field(default_factory=list)

    def add(self, tool: str, step: str, measured: Measured) -> None:
        self.measured.setdefault((tool, step), []).append(measured)

    def fail(self, tool: str, step: str, why: str) -> None:
        self.failures.setdefault((tool, step), []).append(why)

    def median(self, tool: str, step: str, what: str = "seconds") -> float | None:
        found = self.measured.get((tool, step))
        return statistics.median(getattr(m, what) for m in found) if found else None


def hosts_cpu(fleet: fleet_lib.Fleet) -> float:
    """CPU seconds spent so far on the simulated hosts: every finished SSH session and what it
    ran (the sshd daemons' reaped children), plus each host's supervisord."""
    ticks = 0
    for daemon in fleet.daemons:
        fields = Path(f"/proc/{daemon.pid}/stat").read_text().rpartition(")")[2].split()
        ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    for host in fleet.hosts:
        with contextlib.suppress(OSError, ValueError):
            pid = int((Path(host.root) / "supervisor" / "supervisord.pid").read_text())
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def sessions_ended(fleet: fleet_lib.Fleet, timeout: float = 10.0) -> None:
    """Wait (bounded) until no connection of the last run is open, so its CPU is counted."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = "".join(
            Path(f"/proc/{d.pid}/task/{d.pid}/children").read_text() for d in fleet.daemons
        )
        if not children.strip():
            return
        time.sleep(0.1)


def measure(
    tool: str, step: str, run: int, fleet: fleet_lib.Fleet, inputs: Inputs, timeout: float
) -> tuple[Measured, dict[str, int]]:
    """One step of one tool, timed; for Shipyard also the results it reported per instance."""
    tag = f"{tool}-{step}-r{run}"
    sessions_ended(fleet)
    before = hosts_cpu(fleet)
    counts: dict[str, int] = {}
    if tool == "shipyard":
        ran, counts = shipyard_deploy(timeout, tag)
    else:
        ran = rival_deploy(tool, inputs, timeout, tag)
    sessions_ended(fleet)
    return Measured(ran.seconds, ran.cpu, hosts_cpu(fleet) - before), counts


def round_of(
    tool: str,
    run: int,
    fleet: fleet_lib.Fleet,
    scenario: Scenario,
    inputs: Inputs,
    args: argparse.Namespace,
    results: Results,
) -> None:
    """The first deploy and the no-op of `tool` (and Shipyard's change), checked on the hosts."""
    expected = scenario.hosts * scenario.services
    clear_tool(fleet, tool)
    if tool == "shipyard":
        write_project(fleet, scenario)
    step = "first"
    try:
        results.loads.append(os.getloadavg()[0])
        done, counts = measure(tool, step, run, fleet, inputs, args.timeout)
        if tool == "shipyard":
            _expect_counts(counts, {"success": expected}, f"{tool}-{step}")
        before = settled(fleet, tool, expected)
        results.add(tool, step, done)
        log(f"  run {run}: {LABELS[tool]} first deploy of {expected} instances: {_said(done)}")

        step = "noop"
        done, counts = measure(tool, step, run, fleet, inputs, args.timeout)
        if tool == "shipyard":
            _expect_counts(counts, {"unchanged": expected}, f"{tool}-{step}")
        after = settled(fleet, tool, expected)
        restarted = _restarted(before, after)
        if restarted:
            raise BenchFailure(f"{len(restarted)} programs restarted, e.g. {restarted[:3]}")
        results.add(tool, step, done)
        log(f"  run {run}: {LABELS[tool]} no-op redeploy: {_said(done)}, 0 restarted")

        if tool == "shipyard":
            step = "change"
            write_project(fleet, scenario, changed=True)
            done, counts = measure(tool, step, run, fleet, inputs, args.timeout)
            touched = counts.get("success", 0)
            wanted = {"success": scenario.hosts, "unchanged": expected - scenario.hosts}
            _expect_counts(counts, wanted, f"{tool}-{step}")
            changed = settled(fleet, tool, expected)
            restarted = _restarted(after, changed)
            wrong = [name for name in restarted if not name.startswith(f"{scenario.changed}@")]
            if wrong or len(restarted) != scenario.hosts:
                raise BenchFailure(
                    f"{len(restarted)} programs restarted, {len(wrong)} of other services"
                )
            results.add(tool, step, done)
            results.touched.append(touched)
            log(
                f"  run {run}: Shipyard change to template {scenario.changed}: {_said(done)}, "
                f"{touched} instances deployed, {counts.get('unchanged', 0)} unchanged, "
                f"{len(restarted)} programs restarted (all {scenario.changed})"
            )
    except (BenchFailure, subprocess.TimeoutExpired, OSError, ValueError) as failure:
        why = (
            f"timed out after {args.timeout:g} s"
            if isinstance(failure, subprocess.TimeoutExpired)
            else str(failure)
        )
        results.fail(tool, step, why)
        log(f"  run {run}: {LABELS[tool]} {STEPS[step]} FAILED: {why}")
    finally:
        clear_tool(fleet, tool)  # at most one tool's programs run at a time


def _said(done: Measured) -> str:
    return (
        f"{done.seconds:.2f} s (CPU: {done.controller_cpu:.1f} s controller, "
        f"{done.hosts_cpu:.1f} s hosts)"
    )


def _expect_counts(counts: dict[str, int], wanted: dict[str, int], tag: str) -> None:
    if {k: v for k, v in counts.items() if v} != {k: v for k, v in wanted.items() if v}:
        raise BenchFailure(f"{tag}: results {counts}, expected {wanted}")


def _restarted(before: dict[str, tuple[str, int]], after: dict[str, tuple[str, int]]) -> list[str]:
    return sorted(name for name, (_, pid) in after.items() if before.get(name, ("", 0))[1] != pid)


# --- reporting ----------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def table(results: Results, tools: list[str], markdown: bool, *, cpu: bool = False) -> str:
    """Wall-clock medians (or with `cpu`, CPU seconds: controller + hosts) and the ratios."""
    rivals = [t for t in tools if t != "shipyard"]
    unit = "CPU s" if cpu else "s"
    header = ["step", *(f"{LABELS[t]} {unit}" for t in tools)]
    header += [f"{LABELS[t]} ÷ Shipyard" for t in rivals if "shipyard" in tools]

    def value(tool: str, step: str) -> float | None:
        if not cpu:
            return results.median(tool, step)
        found = results.measured.get((tool, step))
        return statistics.median(m.controller_cpu + m.hosts_cpu for m in found) if found else None

    def shown(tool: str, step: str) -> str:
        total = value(tool, step)
        if total is None:
            return "failed" if (tool, step) in results.failures else "-"
        if not cpu:
            return _fmt(total)
        controller = results.median(tool, step, "controller_cpu") or 0.0
        return f"{total:.0f} ({controller:.0f} + {results.median(tool, step, 'hosts_cpu'):.0f})"

    body = []
    for step, label in STEPS.items():
        if not any((t, step) in results.measured or (t, step) in results.failures for t in tools):
            continue
        ours = value("shipyard", step)
        cells = [label, *(shown(tool, step) for tool in tools)]
        if "shipyard" in tools:
            for tool in rivals:
                theirs = value(tool, step)
                ratio = theirs / ours if theirs is not None and ours else None
                cells.append("-" if ratio is None else f"{ratio:.1f}x")
        body.append(cells)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(header) - 1)]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join(
        "  ".join(
            [row[0].ljust(widths[0])]
            + [c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)]
        )
        for row in [header, *body]
    )


def goals(results: Results, scenario: Scenario, tools: list[str]) -> list[str]:
    full = (scenario.hosts, scenario.services) == (GOAL_HOSTS, GOAL_SERVICES)
    lines = [
        "goals"
        + (
            ""
            if full
            else f" (stated for {GOAL_HOSTS} hosts x {GOAL_SERVICES} services; "
            f"checked here at {scenario.hosts} x {scenario.services})"
        )
        + ":"
    ]
    ours = results.median("shipyard", "first")
    for tool, factor in GOAL_FASTER.items():
        if tool not in tools:
            continue
        theirs = results.median(tool, "first")
        if ours is None or theirs is None:
            lines.append(f"  first deploy {factor:g}x faster than {LABELS[tool]}: no comparison")
            continue
        ratio = theirs / ours
        verdict = "MET" if ratio >= factor else "MISSED"
        how = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
        lines.append(
            f"  first deploy {factor:g}x faster than {LABELS[tool]}: Shipyard is {how} "
            f"({ours:.2f} s vs {theirs:.2f} s) -> {verdict}"
        )
    noop = results.median("shipyard", "noop")
    if noop is not None:
        verdict = "MET" if noop < GOAL_NOOP_SECONDS else "MISSED"
        lines.append(f"  no-op under {GOAL_NOOP_SECONDS:g} s: {noop:.2f} s -> {verdict}")
    if results.touched:
        ok = all(t == scenario.hosts for t in results.touched)
        lines.append(
            f"  one-value change to template {scenario.changed} touches only its "
            f"{scenario.hosts} instances: touched {sorted(set(results.touched))} of "
            f"{scenario.hosts * scenario.services}, only {scenario.changed}'s programs "
            f"restarted -> {'MET' if ok else 'MISSED'}"
        )
    return lines


def preamble(args: argparse.Namespace, scenario: Scenario) -> list[str]:
    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    versions = ", ".join(f"{t} {_tools.tool_version(t)}" for t in args.tool_list if t != "shipyard")
    dirty = git("status", "--porcelain", "--", "src")
    return [
        f"deploy benchmark: {scenario.services} services on {scenario.hosts} fleet hosts "
        f"({scenario.hosts * scenario.services} instances), {args.runs} run(s) per tool, median",
        f"Shipyard at {git('log', '-1', '--format=%h %s')}"
        + (" (src/ has uncommitted changes)" if dirty else ""),
        f"tools: Python {sys.version.split()[0]}" + (f", {versions}" if versions else ""),
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start "
        "(client, sshd, supervisord and other people's tests share these CPUs)",
        "settings: the fleet's ssh_config, key and known_hosts (strict), curve25519-sha256; "
        "Ansible forks = hosts, pipelining on, ControlMaster within a run; pyinfra --parallel "
        "hosts; every run a new process with cold connections",
    ]


# --- the fleet ----------------------------------------------------------------------------------


def start_fleet(count: int) -> fleet_lib.Fleet:
    """A new fleet in bench/.work/deploy/fleet; a fleet left there by a killed run is stopped."""
    if (FLEET_DIR / fleet_lib.STATE_FILE).exists():
        old = fleet_lib.load_fleet(FLEET_DIR)
        log(f"stopping the fleet left in {FLEET_DIR}")
        stop_supervisors(old.hosts)
        fleet_lib.stop_fleet(old)
    shutil.rmtree(FLEET_DIR, ignore_errors=True)
    started = time.perf_counter()
    fleet = fleet_lib.start_fleet(count, FLEET_DIR)
    log(
        f"fleet of {count} hosts up in {time.perf_counter() - started:.1f} s "
        f"({len(fleet.daemons)} sshd daemons, 127.{fleet.slot}.x.y)"
    )
    return fleet


def stop_everything(fleet: fleet_lib.Fleet) -> None:
    """Each host's supervisord by the pid in its supervisord.pid, then the sshd daemons by PID."""
    stop_supervisors(fleet.hosts)
    fleet_lib.stop_fleet(fleet)
    log(f"fleet in {FLEET_DIR} stopped (supervisords and sshd daemons)")


def bootstrap(fleet: fleet_lib.Fleet, scenario: Scenario) -> None:
    write_project(fleet, scenario)
    shipyard = str(Path(sys.executable).parent / "shipyard")
    ran = run_timed(
        [shipyard, "bootstrap", "--json"],
        cwd=PROJECT_DIR,
        env=shipyard_env(),
        timeout=300,
        tag="bootstrap",
    )
    reports = json.loads(ran.stdout)
    errors = [r for r in reports if r["error"]]
    if errors:
        raise BenchFailure(f"bootstrap failed on {len(errors)} hosts, e.g. {errors[0]}")
    log(f"shipyard bootstrap: {len(reports)} hosts, each with its supervisord, {ran.seconds:.1f} s")


# --- main ---------------------------------------------------------------------------------------


def _terminated(signum: int, frame: object) -> None:
    log(f"stopped by signal {signum}")
    sys.exit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=GOAL_HOSTS, help="fleet hosts")
    parser.add_argument("--services", type=int, default=GOAL_SERVICES, help="services per host")
    parser.add_argument("--runs", type=int, default=3, help="timed rounds (the median counts)")
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"subset of {','.join(TOOLS)}")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per tool run")
    parser.add_argument("--markdown", action="store_true", help="also print a markdown table")
    parser.add_argument("--keep-fleet", action="store_true", help="leave the fleet running")
    args = parser.parse_args(argv)
    args.tool_list = [t for t in TOOLS if t in {s.strip() for s in args.tools.split(",")}]
    if not args.tool_list:
        parser.error(f"choose tools from {','.join(TOOLS)}")
    if args.hosts < 1 or not 1 <= args.services <= 99 or args.runs < 1:
        parser.error("hosts and runs must be positive, services between 1 and 99")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    scenario = Scenario(args.hosts, args.services)
    WORK.mkdir(parents=True, exist_ok=True)
    for tool in args.tool_list:
        if tool != "shipyard":
            _tools.ensure_venv(tool, log)
    print("\n".join(preamble(args, scenario)), flush=True)
    results = Results()
    fleet = None
    try:
        fleet = start_fleet(scenario.hosts)
        bootstrap(fleet, scenario)
        inputs = write_rival_inputs(fleet, scenario)
        for run in range(1, args.runs + 1):
            # Rotate the order each round so no tool always follows the same one.
            shift = (run - 1) % len(args.tool_list)
            for tool in args.tool_list[shift:] + args.tool_list[:shift]:
                round_of(tool, run, fleet, scenario, inputs, args, results)
        loads = ", ".join(f"{x:.1f}" for x in results.loads)
        print(
            f"\nload average (1 min) before each timed first deploy: {loads}; "
            f"at the end: {os.getloadavg()[0]:.2f}"
        )
        title = (
            f"{scenario.services} services x {scenario.hosts} hosts = "
            f"{scenario.hosts * scenario.services} instances, median of {args.runs} run(s)"
        )
        print(f"\n== {title}: wall clock ==")
        print(table(results, args.tool_list, markdown=False))
        print("\n== the same steps in CPU seconds: total (controller + hosts) ==")
        print(table(results, args.tool_list, markdown=False, cpu=True))
        for (tool, step), whys in results.failures.items():
            print(f"  {LABELS[tool]} {STEPS[step]} failed {len(whys)}x: {whys[0]}")
        print("\n" + "\n".join(goals(results, scenario, args.tool_list)))
        if args.markdown:
            print(f"\n<!-- markdown -->\n\n**{title}**, wall clock\n")
            print(table(results, args.tool_list, markdown=True))
            print("\nCPU seconds, total (controller + hosts)\n")
            print(table(results, args.tool_list, markdown=True, cpu=True))
        dump = {
            "scenario": vars(scenario),
            "measured": {
                f"{t}/{s}": [vars(m) for m in v] for (t, s), v in results.measured.items()
            },
            "failures": {f"{t}/{s}": v for (t, s), v in results.failures.items()},
            "touched": results.touched,
            "loads": results.loads,
        }
        (WORK / "deploy-results.json").write_text(json.dumps(dump, indent=1) + "\n")
        return 0 if not results.failures else 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if fleet is not None and not args.keep_fleet:
            stop_everything(fleet)
        elif fleet is not None:
            log(f"fleet kept in {FLEET_DIR}: stop its supervisords, then scripts/fleet down")


if __name__ == "__main__":
    sys.exit(main())
