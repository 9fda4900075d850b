"""Benchmark: fan-out over a real SSH fleet, Shipyard against the tools users would otherwise pick.

Starts a fleet of real sshd hosts on loopback (scripts/fleet's code) at the largest N, then for
each N times two workloads on the first N hosts:

    run   run `uname -r` on every host and collect the output
    put   upload a 1 MiB file of random bytes to every host (into the host's own directory)

with Shipyard (Python API: ExecutorPool + fan_out, one process; and the `shipyard run` CLI),
pyinfra, Ansible, Fabric, and two lower bounds: a minimal asyncssh script and OpenSSH's own
client in parallel (xargs -P N ssh / scp). Each third-party tool is installed into its own
virtualenv under bench/.venvs/ on first use. Every run is a fresh process with cold connections.
Prints the median and minimum of the runs and Shipyard's ratio to each tool.

Goal at N = 200, for both workloads: Shipyard within 1.15x of the fastest thing measured, and
faster than each of pyinfra, Ansible and Fabric.

    .venv/bin/python bench/fanout.py [--sizes 10,50,200] [--runs 3] [--tools shipyard,ansible]
                                     [--timeout 300] [--keep-fleet] [--markdown]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _tools
from _tools import BENCH, REPO, RESULT_TAG, Inputs, Target

WORK = BENCH / ".work"
FLEET_DIR = WORK / "fleet"
BLOB_SIZE = 1024 * 1024
GOAL_RATIO = 1.15
GOAL_N = 200
TOOLS = ("shipyard", "shipyard-cli", "pyinfra", "ansible", "fabric", "asyncssh", "openssh")
WORKLOADS = {
    "run": "run `uname -r` on every host and collect the output",
    "put": "upload a 1 MiB file to every host",
}
RIVALS = ("pyinfra", "ansible", "fabric")  # the goal says: faster than each of these


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the fleet --------------------------------------------------------------------------------


def fleet_module() -> ModuleType:
    """tests/fleet.py (stdlib only), loaded under its own name."""
    spec = importlib.util.spec_from_file_location(
        "shipyard_test_fleet", REPO / "tests" / "fleet.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def obtain_fleet(fm: ModuleType, count: int) -> object:
    """A fleet of at least `count` hosts in bench/.work/fleet: a kept one if alive, else new."""
    if (FLEET_DIR / fm.STATE_FILE).exists():
        old = fm.load_fleet(FLEET_DIR)
        alive = all(fm._is_our_sshd(d) for d in old.daemons)
        if alive and len(old.hosts) >= count:
            log(f"reusing the fleet kept in {FLEET_DIR} ({len(old.hosts)} hosts)")
            return old
        log(f"stopping the old fleet in {FLEET_DIR}")
        fm.stop_fleet(old)
    if FLEET_DIR.exists():
        shutil.rmtree(FLEET_DIR)
    started = time.perf_counter()
    fleet = fm.start_fleet(count, FLEET_DIR)
    log(
        f"fleet of {count} hosts up in {time.perf_counter() - started:.1f} s "
        f"({len(fleet.daemons)} sshd daemons, 127.{fleet.slot}.x.y)"
    )
    return fleet


# --- one fleet size ---------------------------------------------------------------------------


def prepare_size(fleet: object, count: int, blob: Path) -> Inputs:
    """Write everything the tools need to work on the first `count` hosts."""
    d = WORK / f"n{count}"
    d.mkdir(parents=True, exist_ok=True)
    hosts = fleet.hosts[:count]  # type: ignore[attr-defined]
    targets = [Target(h.name, h.address, str(Path(h.root) / "bench" / "blob.bin")) for h in hosts]
    # A shipyard.yaml like the fleet's, listing only these hosts.
    project = yaml.safe_load(fleet.project_file.read_text())  # type: ignore[attr-defined]
    names = {h.name for h in hosts}
    for site in project.get("sites", {}).values():
        site["hosts"] = {n: h for n, h in site["hosts"].items() if n in names}
    (d / "shipyard.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    inputs = Inputs(
        dir=d,
        targets=targets,
        ssh_config=fleet.ssh_config,  # type: ignore[attr-defined]
        identity_file=fleet.identity_file,  # type: ignore[attr-defined]
        known_hosts=fleet.known_hosts,  # type: ignore[attr-defined]
        blob=blob,
        project_file=d / "shipyard.yaml",
    )
    _tools.write_inputs(inputs)
    return inputs


def clear_uploads(inputs: Inputs) -> None:
    for target in inputs.targets:
        folder = Path(target.dest).parent
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)


def check_uploads(inputs: Inputs, digest: str) -> list[str]:
    """Hosts whose uploaded file is missing or differs from the blob."""
    bad = []
    for target in inputs.targets:
        path = Path(target.dest)
        try:
            if path.stat().st_size != BLOB_SIZE or _sha256(path) != digest:
                bad.append(target.name)
        except OSError:
            bad.append(target.name)
    return bad


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the cases --------------------------------------------------------------------------------


# Each row: key, tool (what --tools selects), workload, label, command line. In the command
# line @N is the number of hosts, @DIR the directory of inputs for this N, @CFG the fleet's
# ssh_config, @BLOB the file to upload, @PY our venv's python (@VENV its bin directory), @W
# `_tools.py worker`, and @pyinfra/@ansible/@fabric the bin directory of that tool's venv.
CASES = [
    ("shipyard-run", "shipyard", "run", "Shipyard API (fan_out + run)",
     "@PY @W shipyard @DIR/spec.json run"),
    ("shipyard-cli-run", "shipyard-cli", "run", "shipyard run -- uname -r (CLI)",
     "@VENV/shipyard run -- uname -r"),
    ("pyinfra-run", "pyinfra", "run", "pyinfra exec",
     "@pyinfra/pyinfra -y --parallel @N @DIR/pyinfra_inventory.py exec -- uname -r"),
    ("ansible-raw", "ansible", "run", "ansible -m raw",
     "@ansible/ansible all -f @N -m raw -a 'uname -r'"),
    ("ansible-command", "ansible", "run", "ansible -m command",
     "@ansible/ansible all -f @N -m command -a 'uname -r'"),
    ("fabric-run", "fabric", "run", "Fabric ThreadingGroup.run",
     "@fabric/python @W fabric @DIR/spec.json run"),
    ("asyncssh-run", "asyncssh", "run", "asyncssh gather (lower bound)",
     "@PY @W asyncssh @DIR/spec.json run"),
    ("openssh-run", "openssh", "run", "xargs -P N ssh (lower bound)",
     "xargs -a @DIR/hosts.txt -P @N -I{} ssh -F @CFG {} uname -r"),
    ("shipyard-put", "shipyard", "put", "Shipyard API (fan_out + put)",
     "@PY @W shipyard @DIR/spec.json put"),
    ("pyinfra-put", "pyinfra", "put", "pyinfra files.put",
     "@pyinfra/pyinfra -y --parallel @N @DIR/pyinfra_inventory.py @DIR/pyinfra_put.py"),
    ("ansible-copy", "ansible", "put", "ansible -m copy",
     "@ansible/ansible all -f @N -m copy -a 'src=@BLOB dest={{ bench_dest }}'"),
    ("fabric-put", "fabric", "put", "Fabric connections, a thread each, put",
     "@fabric/python @W fabric @DIR/spec.json put"),
    ("asyncssh-put", "asyncssh", "put", "asyncssh gather, cat > file (lower bound)",
     "@PY @W asyncssh @DIR/spec.json put"),
    ("openssh-put", "openssh", "put", "xargs -P N scp (lower bound)",
     "xargs -a @DIR/scp.txt -P @N -I{} scp -q -F @CFG @BLOB {}"),
]  # fmt: skip
LOWER_BOUNDS = ("asyncssh", "openssh")


@dataclass(frozen=True)
class Case:
    """One row of a table: a tool doing one workload, as a command line."""

    key: str
    tool: str
    workload: str
    label: str
    command: str

    @property
    def worker(self) -> bool:
        """A worker of _tools.py: it prints a BENCH-RESULT line (else we count outputs)."""
        return " @W " in self.command

    @property
    def shipyard(self) -> bool:
        return self.tool == "shipyard"

    def argv(self, inputs: Inputs) -> list[str]:
        tokens = {
            "@N": str(len(inputs.targets)),
            "@DIR": str(inputs.dir),
            "@CFG": str(inputs.ssh_config),
            "@BLOB": str(inputs.blob),
            "@PY": sys.executable,
            "@VENV": str(Path(sys.executable).parent),
            "@W": str(BENCH / "_tools.py"),
        }
        tokens.update({f"@{tool}": str(_tools.venv_bin(tool)) for tool in _tools.PACKAGES})
        line = self.command.replace(" @W ", " @W worker ")
        for token in sorted(tokens, key=len, reverse=True):  # @DIR before @D..., if ever
            line = line.replace(token, tokens[token])
        return shlex.split(line)

    def env(self, inputs: Inputs, scratch: Path) -> dict[str, str]:
        if self.tool == "ansible":
            return _tools.ansible_env(inputs, scratch)
        return {"COLUMNS": "200"}


def build_cases(tools: set[str], workloads: list[str]) -> list[Case]:
    cases = [Case(*row) for row in CASES]
    return [c for c in cases if c.tool in tools and c.workload in workloads]


# --- running ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    seconds: float
    ok: bool
    work: float | None = None
    note: str = ""


@dataclass
class Row:
    case: Case
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def good(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.ok]

    @property
    def median(self) -> float | None:
        good = self.good
        return statistics.median(o.seconds for o in good) if good else None

    @property
    def minimum(self) -> float | None:
        good = self.good
        return min(o.seconds for o in good) if good else None

    @property
    def work(self) -> float | None:
        works = [o.work for o in self.good if o.work is not None]
        return statistics.median(works) if works else None


class Runner:
    """Runs cases as child processes (own process group, killed by PID on timeout or Ctrl-C)."""

    def __init__(self, timeout: float, digest: str) -> None:
        self.timeout = timeout
        self.digest = digest
        self.sequence = 0
        self.logs = WORK / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def run(self, case: Case, inputs: Inputs, tag: str) -> Outcome:
        self.sequence += 1
        scratch = WORK / "cp" / str(self.sequence)  # ssh ControlPath dir, fresh per run
        scratch.mkdir(parents=True, exist_ok=True)
        if case.workload == "put":
            clear_uploads(inputs)
        env = {**os.environ, **case.env(inputs, scratch)}
        argv = case.argv(inputs)
        started = time.perf_counter()
        try:
            process = subprocess.Popen(
                argv,
                cwd=inputs.dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except OSError as exc:
            return Outcome(0.0, False, note=f"cannot start {argv[0]}: {exc}")
        try:
            out, err = process.communicate(timeout=self.timeout)
            seconds = time.perf_counter() - started
        except subprocess.TimeoutExpired:
            _kill_group(process)
            out, err = process.communicate()
            self._save(case, inputs, tag, argv, out, err)
            return Outcome(self.timeout, False, note=f"timed out after {self.timeout:g} s")
        except BaseException:
            _kill_group(process)
            process.communicate()
            raise
        finally:
            _tools.close_control_masters(scratch)
            shutil.rmtree(scratch, ignore_errors=True)
        # Tools print the hosts' output on stdout or (pyinfra) stderr: count it in both.
        text = (out + b"\n" + err).decode(errors="replace")
        outcome = self._judge(case, inputs, process.returncode, text, seconds)
        if not outcome.ok:
            path = self._save(case, inputs, tag, argv, out, err)
            outcome.note += f" (output in {path.relative_to(REPO)})"
        return outcome

    def _judge(self, case: Case, inputs: Inputs, status: int, out: str, seconds: float) -> Outcome:
        count = len(inputs.targets)
        release = os.uname().release
        work = None
        if case.worker:
            lines = [line for line in out.splitlines() if line.startswith(RESULT_TAG)]
            if not lines:
                return Outcome(seconds, False, note=f"exit status {status}, no result line")
            report = json.loads(lines[-1][len(RESULT_TAG) :])
            work = report["work"]
            if report["failed"]:
                first = next(iter(report["failed"].items()))
                return Outcome(
                    seconds,
                    False,
                    work,
                    f"{len(report['failed'])} hosts failed, e.g. {first[0]}: {first[1]}",
                )
            if case.workload == "run" and report["matches"] < count:
                return Outcome(seconds, False, work, f"only {report['matches']}/{count} outputs")
        elif status != 0:
            return Outcome(seconds, False, note=f"exit status {status}")
        elif case.workload == "run" and out.count(release) < count:
            return Outcome(seconds, False, note=f"only {out.count(release)}/{count} outputs seen")
        if case.workload == "put":
            bad = check_uploads(inputs, self.digest)
            if bad:
                return Outcome(
                    seconds,
                    False,
                    work,
                    f"{len(bad)}/{count} uploads missing or wrong, e.g. {bad[0]}",
                )
        return Outcome(seconds, True, work)

    def _save(
        self, case: Case, inputs: Inputs, tag: str, argv: list[str], out: bytes, err: bytes
    ) -> Path:
        path = self.logs / f"{case.key}-n{len(inputs.targets)}-{tag}.log"
        path.write_bytes(
            f"$ {' '.join(argv)}\n--- stdout\n".encode()
            + out[-20000:]
            + b"\n--- stderr\n"
            + err[-20000:]
        )
        return path


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the process group we created for this child (it leads it: pgid == its pid)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


# --- reporting --------------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def shipyard_row(rows: list[Row]) -> Row | None:
    return next((r for r in rows if r.case.shipyard), None)


def table(rows: list[Row], markdown: bool) -> str:
    ours = shipyard_row(rows)
    base = ours.median if ours else None
    header = ["tool", "median s", "min s", "in-process s", "Shipyard ÷ tool"]
    body = []
    for row in rows:
        median = row.median
        if median is None:
            failure = next((o.note for o in row.outcomes if not o.ok), "no runs")
            body.append([row.case.label, "failed", "-", "-", failure])
            continue
        ratio = "-" if base is None else f"{base / median:.2f}"
        ok_runs = (
            f" ({len(row.good)}/{len(row.outcomes)} ok)"
            if len(row.good) < len(row.outcomes)
            else ""
        )
        body.append(
            [row.case.label + ok_runs, _fmt(median), _fmt(row.minimum), _fmt(row.work), ratio]
        )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * 4) + "|"]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(4)]

    def fmt(cells: list[str]) -> str:
        numbers = [c.rjust(w) for c, w in zip(cells[1:4], widths[1:], strict=True)]
        return "  ".join([cells[0].ljust(widths[0]), *numbers, cells[4]])

    return "\n".join([fmt(header), *(fmt(cells) for cells in body)])


def verdict(rows: list[Row], count: int) -> list[str]:
    """The goal, checked for one workload at one N."""
    ours = shipyard_row(rows)
    if ours is None:
        return ["goal: not checked (Shipyard's API row was not selected)"]
    if ours.median is None:
        return ["goal: Shipyard has no successful run, so it misses the goal"]
    others = [r for r in rows if r is not ours and r.median is not None]
    if not others:
        return ["goal: nothing else measured"]
    fastest = min(others, key=lambda r: r.median or 0.0)
    ratio = ours.median / (fastest.median or 1.0)
    # On a shared machine the best runs say what the code can do, the medians what you get.
    best = (ours.minimum or 0.0) / min(r.minimum or 1.0 for r in others)
    lines = [
        f"goal (N={count}): within {GOAL_RATIO}x of the fastest other ({fastest.case.label}, "
        f"{fastest.median:.2f} s): {ratio:.2f}x -> {'MET' if ratio <= GOAL_RATIO else 'MISSED'}"
        f" (best run against best run: {best:.2f}x)"
    ]
    for row in rows:
        if row.case.tool in RIVALS:
            if row.median is None:
                lines.append(f"  faster than {row.case.label}: it failed, no comparison")
            else:
                met = ours.median < row.median
                lines.append(
                    f"  faster than {row.case.label}: {ours.median:.2f} s vs {row.median:.2f} s "
                    f"-> {'MET' if met else 'MISSED'}"
                )
    return lines


def preamble(args: argparse.Namespace, tools: set[str]) -> list[str]:
    versions = ", ".join(f"{t} {_tools.tool_version(t)}" for t in _tools.PACKAGES if t in tools)
    ssh = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    import asyncssh

    def git(*argv: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *argv], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    head = git("log", "-1", "--format=%h %s")
    dirty = git("status", "--porcelain", "--", "src")
    return [
        f"goal at N={GOAL_N}, both workloads: Shipyard within {GOAL_RATIO}x of the fastest thing "
        "measured, and faster than each of pyinfra, Ansible and Fabric",
        f"Shipyard at {head}" + (" (src/ has uncommitted changes)" if dirty else ""),
        f"fan-out benchmark: sizes {args.sizes}, {args.runs} timed runs each (median), "
        f"per-run timeout {args.timeout:g} s",
        f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start; "
        "client, 200 sshd servers and other people's tests share these CPUs, so numbers are noisy",
        f"tools: Python {sys.version.split()[0]}, asyncssh {asyncssh.__version__}, {ssh}"
        + (f", {versions}" if versions else ""),
        "fair settings for all: the fleet's ssh_config, key and known_hosts (strict checking), "
        "KexAlgorithms curve25519-sha256 (paramiko: every other kex disabled), "
        "each run a new process with cold connections (no ControlMaster survives a run; Ansible "
        "keeps its default ControlMaster within one run), Ansible forks = N and pipelining on, "
        "pyinfra --parallel N",
        "times are wall clock of the whole process (start-up included); 'in-process' is the time "
        "a Python worker measured after its imports",
    ]


# --- main -------------------------------------------------------------------------------------


def _terminated(signum: int, frame: object) -> None:
    log(f"stopped by signal {signum}")
    sys.exit(128 + signum)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,50,200", help="fleet sizes, comma-separated")
    parser.add_argument("--runs", type=int, default=3, help="timed runs per tool and size")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds before the first size"
    )
    parser.add_argument("--tools", default=",".join(TOOLS), help=f"subset of {','.join(TOOLS)}")
    parser.add_argument("--workloads", default="run,put", help="subset of run,put")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per tool run")
    parser.add_argument("--keep-fleet", action="store_true", help="leave the fleet running")
    parser.add_argument("--markdown", action="store_true", help="also print markdown tables")
    args = parser.parse_args(argv)
    args.size_list = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    args.tool_set = {t.strip() for t in args.tools.split(",") if t.strip()}
    unknown = args.tool_set - set(TOOLS)
    if unknown:
        parser.error(
            f"unknown tools: {', '.join(sorted(unknown))} (choose from {', '.join(TOOLS)})"
        )
    args.workload_list = [w for w in ("run", "put") if w in args.workloads.split(",")]
    if not args.size_list or min(args.size_list) < 1 or args.runs < 1:
        parser.error("sizes must be positive and runs at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Ctrl-C and SIGTERM unwind through the finally below, which stops the fleet. SIGINT is
    # reset explicitly because a shell ignores it for background jobs, and Python inherits that.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminated)
    WORK.mkdir(parents=True, exist_ok=True)
    for tool in _tools.PACKAGES:
        if tool in args.tool_set:
            try:
                _tools.ensure_venv(tool, log)
            except (subprocess.CalledProcessError, OSError) as exc:
                log(f"{tool}: install failed ({exc}); leaving it out")
                args.tool_set.discard(tool)
    blob = WORK / "blob-1MiB.bin"
    blob.write_bytes(os.urandom(BLOB_SIZE))
    digest = _sha256(blob)
    cases = build_cases(args.tool_set, args.workload_list)
    runner = Runner(args.timeout, digest)
    results: dict[tuple[str, int], list[Row]] = {}
    fm = fleet_module()
    fleet = None
    print("\n".join(preamble(args, args.tool_set)), flush=True)
    try:
        fleet = obtain_fleet(fm, max(args.size_list))
        for index, count in enumerate(args.size_list):
            inputs = prepare_size(fleet, count, blob)
            rows = {c.key: Row(c) for c in cases}
            if index == 0:
                for w in range(args.warmup):
                    for case in cases:
                        outcome = runner.run(case, inputs, f"warmup{w}")
                        state = "ok" if outcome.ok else f"FAILED: {outcome.note}"
                        log(f"  warm-up N={count} {case.label}: {outcome.seconds:.2f} s {state}")
            for run in range(args.runs):
                # Rotate the order each round so no tool always runs right after the same one.
                shift = run % len(cases)
                for case in cases[shift:] + cases[:shift]:
                    outcome = runner.run(case, inputs, f"r{run}")
                    rows[case.key].outcomes.append(outcome)
                    state = "ok" if outcome.ok else f"FAILED: {outcome.note}"
                    where = f"N={count} run {run + 1}/{args.runs}"
                    log(f"  {where} {case.label}: {outcome.seconds:.2f} s {state}")
            for workload in args.workload_list:
                selected = [rows[c.key] for c in cases if c.workload == workload]
                if not selected:
                    continue
                results[(workload, count)] = selected
                title = f"{WORKLOADS[workload]} · N={count} · {args.runs} runs, cold connections"
                print(f"\n== {title} ==")
                print(table(selected, markdown=False), flush=True)
        print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")
        goal_n = GOAL_N if GOAL_N in args.size_list else max(args.size_list)
        if goal_n != GOAL_N:
            print(
                f"(the goal is stated for N={GOAL_N}; checking it at N={goal_n}, the largest run)"
            )
        for workload in args.workload_list:
            if (workload, goal_n) not in results:
                continue
            print(f"\n{WORKLOADS[workload]}:")
            print("\n".join(verdict(results[(workload, goal_n)], goal_n)))
        if args.markdown:
            print("\n<!-- markdown -->")
            for (workload, count), rows_ in results.items():
                print(f"\n**{WORKLOADS[workload]}, N = {count}** (median of {args.runs} runs)\n")
                print(table(rows_, markdown=True))
        dump = {
            f"{w}-{n}": [
                {
                    "tool": r.case.label,
                    "seconds": [o.seconds for o in r.outcomes],
                    "ok": [o.ok for o in r.outcomes],
                    "work": [o.work for o in r.outcomes],
                    "notes": [o.note for o in r.outcomes],
                }
                for r in rows_
            ]
            for (w, n), rows_ in results.items()
        }
        (WORK / "fanout-results.json").write_text(json.dumps(dump, indent=1) + "\n")
        return 0
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        if fleet is not None and not args.keep_fleet:
            fm.stop_fleet(fleet)
            log(f"fleet in {FLEET_DIR} stopped")
        elif fleet is not None:
            log(f"fleet kept in {FLEET_DIR}; stop it with: scripts/fleet down --dir {FLEET_DIR}")


if __name__ == "__main__":
    sys.exit(main())
