"""The tools bench/fanout.py compares: their virtualenvs, inputs and the Python workers it runs.

This file is run by interpreters of other virtualenvs too (`python _tools.py worker fabric
SPEC`), so it imports only the standard library at the top; each worker imports its tool inside.

Every tool gets the same fleet: its ssh_config, its key, its known_hosts with strict checking,
curve25519-sha256 key exchange where the tool lets us choose, and a cold start (no connection
survives from one run to the next).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENVS = BENCH / ".venvs"
KEX = "curve25519-sha256"
RESULT_TAG = "BENCH-RESULT "

# Third-party tools, each in its own virtualenv: tool -> pip requirement.
PACKAGES = {"pyinfra": "pyinfra", "ansible": "ansible-core", "fabric": "fabric"}


# --- virtualenvs ------------------------------------------------------------------------------


def base_python() -> str:
    """The interpreter our own venv was made from: new venvs start from the same Python."""
    base = getattr(sys, "_base_executable", "") or ""
    if base and Path(base).exists() and Path(base).resolve() != Path(sys.executable).resolve():
        return base
    for name in (f"python{sys.version_info[0]}.{sys.version_info[1]}", "python3"):
        candidate = Path(sys.base_prefix) / "bin" / name
        if candidate.exists():
            return str(candidate)
    return sys.executable


def venv_bin(tool: str) -> Path:
    return VENVS / tool / "bin"


def ensure_venv(tool: str, log: Callable[[str], None]) -> Path:
    """Create bench/.venvs/<tool> and pip-install the tool into it, once; return its bin dir."""
    venv = VENVS / tool
    marker = venv / ".bench-installed"
    if marker.exists():
        return venv / "bin"
    log(f"installing {PACKAGES[tool]} into {venv.relative_to(REPO)} (first use) ...")
    if not (venv / "bin" / "python").exists():
        subprocess.run([base_python(), "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", PACKAGES[tool]],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    frozen = subprocess.run(
        [python, "-m", "pip", "freeze"], check=True, capture_output=True, text=True
    ).stdout
    marker.write_text(frozen)
    return venv / "bin"


def tool_version(tool: str) -> str:
    marker = VENVS / tool / ".bench-installed"
    wanted = PACKAGES[tool].lower()
    if marker.exists():
        for line in marker.read_text().splitlines():
            name, _, version = line.partition("==")
            if name.lower() == wanted:
                return version
    return "?"


# --- inputs -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One fleet host as the tools see it: ssh_config alias, address, where the upload goes."""

    name: str
    address: str
    dest: str


@dataclass(frozen=True)
class Inputs:
    """What every tool gets for one fleet size, and the files made from it."""

    dir: Path
    targets: list[Target]
    ssh_config: Path
    identity_file: Path
    known_hosts: Path
    blob: Path
    project_file: Path
    extra: dict[str, Path] = field(default_factory=dict)


def write_inputs(inputs: Inputs) -> None:
    """Write the inventories, lists and worker specs of one fleet size into inputs.dir."""
    d, targets = inputs.dir, inputs.targets
    (d / "hosts.txt").write_text("".join(f"{t.name}\n" for t in targets))
    (d / "scp.txt").write_text("".join(f"{t.name}:{t.dest}\n" for t in targets))
    spec = {
        "targets": [t.__dict__ for t in targets],
        "ssh_config": str(inputs.ssh_config),
        "identity_file": str(inputs.identity_file),
        "known_hosts": str(inputs.known_hosts),
        "blob": str(inputs.blob),
        "project_file": str(inputs.project_file),
        "kex": KEX,
    }
    (d / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
    _write_pyinfra(inputs)
    _write_ansible(inputs)


def _write_pyinfra(inputs: Inputs) -> None:
    common = {
        "ssh_user": "root",
        "ssh_key": str(inputs.identity_file),
        "ssh_config_file": str(inputs.ssh_config),
        "ssh_known_hosts_file": str(inputs.known_hosts),
        "ssh_strict_host_key_checking": "yes",
        "ssh_allow_agent": False,
        "ssh_look_for_keys": False,
    }
    hosts = [(t.name, {"bench_dest": t.dest}) for t in inputs.targets]
    (inputs.dir / "pyinfra_inventory.py").write_text(
        "# Written by bench/fanout.py: the fleet, with its ssh_config, key and known_hosts.\n"
        "import paramiko\n\n"
        f"KEX = {KEX!r}\n"
        "# paramiko has no KexAlgorithms option: disable every kex but curve25519.\n"
        "_OFF = [k for k in paramiko.Transport._preferred_kex if 'curve25519' not in k]\n"
        f"_COMMON = {common!r}\n"
        "_COMMON['ssh_paramiko_connect_kwargs'] = {'disabled_algorithms': {'kex': _OFF}}\n"
        f"fleet = [(name, {{**_COMMON, **data}}) for name, data in {hosts!r}]\n"
    )
    (inputs.dir / "pyinfra_put.py").write_text(
        "from pyinfra import host\nfrom pyinfra.operations import files\n\n"
        f"files.put(name='upload 1 MiB', src={str(inputs.blob)!r}, dest=host.data.bench_dest)\n"
    )


def _write_ansible(inputs: Inputs) -> None:
    lines = ["[fleet]"]
    lines += [f"{t.name} bench_dest={t.dest}" for t in inputs.targets]
    lines += ["", "[all:vars]", "ansible_user=root", "ansible_python_interpreter=/usr/bin/python3"]
    (inputs.dir / "ansible_inventory.ini").write_text("\n".join(lines) + "\n")
    work = inputs.dir / "ansible"
    (work / "local").mkdir(parents=True, exist_ok=True)
    (work / "home").mkdir(parents=True, exist_ok=True)
    (work / "remote").mkdir(parents=True, exist_ok=True)
    (inputs.dir / "ansible.cfg").write_text(
        "\n".join(
            [
                "[defaults]",
                f"inventory = {inputs.dir / 'ansible_inventory.ini'}",
                f"forks = {len(inputs.targets)}",
                "host_key_checking = True",
                "gathering = explicit",
                "retry_files_enabled = False",
                "deprecation_warnings = False",
                "interpreter_python = /usr/bin/python3",
                f"local_tmp = {work / 'local'}",
                f"remote_tmp = {work / 'remote'}",
                "",
                "[ssh_connection]",
                "pipelining = True",
                # Ansible's own default ssh_args are ControlMaster=auto/ControlPersist=60s; we
                # keep them within a run but give each run a fresh control_path_dir and close
                # the masters after it, so no run starts warm.
                f"ssh_args = -F {inputs.ssh_config} -o KexAlgorithms={KEX} "
                "-o ControlMaster=auto -o ControlPersist=60s",
                "",
            ]
        )
    )


def ansible_env(inputs: Inputs, control_dir: Path) -> dict[str, str]:
    return {
        "ANSIBLE_CONFIG": str(inputs.dir / "ansible.cfg"),
        "ANSIBLE_HOME": str(inputs.dir / "ansible" / "home"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control_dir),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "LC_ALL": "C.UTF-8",
    }


def close_control_masters(control_dir: Path) -> int:
    """Ask each ssh ControlMaster whose socket is in control_dir to exit; return how many."""
    closed = 0
    if not control_dir.exists():
        return 0
    for sock in sorted(control_dir.iterdir()):
        if sock.is_socket():
            subprocess.run(
                ["ssh", "-o", f"ControlPath={sock}", "-O", "exit", "bench-master"],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
            closed += 1
    return closed


# --- workers: run inside a tool's venv as `python _tools.py worker NAME SPEC WORKLOAD` ---------


def _finish(ok: list[str], failed: dict[str, str], started: float, outputs: list[str]) -> None:
    release = os.uname().release
    matches = sum(1 for out in outputs if out.strip() == release)
    report = {
        "ok": len(ok),
        "failed": failed,
        "work": time.perf_counter() - started,
        "matches": matches,
    }
    print(RESULT_TAG + json.dumps(report), flush=True)


def worker_asyncssh(spec: dict[str, object], workload: str) -> None:
    """The least a program can do: gather one asyncssh connection per host, one channel each."""
    import asyncio

    import asyncssh

    started = time.perf_counter()
    targets = [Target(**t) for t in spec["targets"]]  # type: ignore[attr-defined]
    key = asyncssh.read_private_key(str(spec["identity_file"]))
    known = asyncssh.read_known_hosts(str(spec["known_hosts"]))
    blob = Path(str(spec["blob"])).read_bytes() if workload == "put" else b""

    async def one(target: Target) -> str:
        async with asyncssh.connect(
            target.address,
            username="root",
            client_keys=[key],
            known_hosts=known,
            config=[],
            kex_algs=[str(spec["kex"])],
            encryption_algs=["aes128-gcm@openssh.com"],
        ) as conn:
            if workload == "run":
                result = await conn.run("uname -r", check=True)
            else:
                result = await conn.run(
                    f"cat > {target.dest}", input=blob, check=True, encoding=None
                )
            out = result.stdout
            return out.decode() if isinstance(out, bytes) else str(out or "")

    async def main() -> None:
        results = await asyncio.gather(*(one(t) for t in targets), return_exceptions=True)
        ok, failed, outputs = [], {}, []
        for target, res in zip(targets, results, strict=True):
            if isinstance(res, BaseException):
                failed[target.name] = f"{type(res).__name__}: {res}"
            else:
                ok.append(target.name)
                outputs.append(res)
        _finish(ok, failed, started, outputs)

    asyncio.run(main())


def worker_fabric(spec: dict[str, object], workload: str) -> None:
    """Fabric: a ThreadingGroup over the ssh_config aliases (a thread per host)."""
    from concurrent.futures import ThreadPoolExecutor

    import paramiko
    from fabric import Config, ThreadingGroup
    from fabric.exceptions import GroupException

    started = time.perf_counter()
    targets = [Target(**t) for t in spec["targets"]]  # type: ignore[attr-defined]
    off = [k for k in paramiko.Transport._preferred_kex if "curve25519" not in k]
    config = Config(runtime_ssh_path=str(spec["ssh_config"]))
    group = ThreadingGroup(
        *[t.name for t in targets],
        config=config,
        connect_kwargs={
            "disabled_algorithms": {"kex": off},
            "allow_agent": False,
            "look_for_keys": False,
        },
    )
    for conn in group:
        # Fabric trusts any host key by default; verify against the fleet's known_hosts instead.
        conn.client.load_host_keys(str(spec["known_hosts"]))
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    ok: list[str] = []
    failed: dict[str, str] = {}
    outputs: list[str] = []
    try:
        if workload == "run":
            try:
                results = group.run("uname -r", hide=True, warn=True)
                items = list(results.items())
            except GroupException as exc:
                items = list(exc.result.items())
            for conn, res in items:
                if isinstance(res, BaseException):
                    failed[conn.original_host] = f"{type(res).__name__}: {res}"
                elif res.exited != 0:
                    failed[conn.original_host] = f"exit {res.exited}: {res.stderr.strip()}"
                else:
                    ok.append(conn.original_host)
                    outputs.append(res.stdout)
        else:
            # Group.put sends the same remote path to every host; ours differ per host, so we
            # drive the group's connections with a thread each, as ThreadingGroup itself does.
            dest = {t.name: t.dest for t in targets}
            conns = list(group)

            def put(conn: object) -> None:
                conn.put(str(spec["blob"]), remote=dest[conn.original_host])  # type: ignore[attr-defined]

            with ThreadPoolExecutor(max_workers=len(conns)) as pool:
                futures = {pool.submit(put, c): c for c in conns}
            for future, conn in futures.items():
                error = future.exception()
                if error is None:
                    ok.append(conn.original_host)
                else:
                    failed[conn.original_host] = f"{type(error).__name__}: {error}"
    finally:
        group.close()
    _finish(ok, failed, started, outputs)


def worker_shipyard(spec: dict[str, object], workload: str) -> None:
    """Shipyard's Python API: load shipyard.yaml, one ExecutorPool, fan_out run or put."""
    import asyncio

    from shipyard.config.loader import load_project
    from shipyard.config.topology import all_hosts
    from shipyard.executors import ExecutorPool, fan_out

    started = time.perf_counter()
    loaded = load_project(Path(str(spec["project_file"])))
    hosts = all_hosts(loaded.project)
    dest = {t["name"]: t["dest"] for t in spec["targets"]}  # type: ignore[attr-defined]
    blob = Path(str(spec["blob"]))

    async def main() -> None:
        async with ExecutorPool(loaded.project.ssh, loaded.root) as pool:
            executors = [pool.executor(name, ref.host) for name, ref in hosts.items()]
            if workload == "run":
                result = await fan_out(executors, lambda e: e.run(["uname", "-r"]))
            else:
                result = await fan_out(executors, lambda e: e.put(blob, dest[e.name]))
        outputs = [
            getattr(value, "stdout", "") for value in result.succeeded.values() if value is not None
        ]
        failed = {host: str(error) for host, error in result.failed.items()}
        _finish(list(result.succeeded), failed, started, outputs)

    asyncio.run(main())


WORKERS = {"asyncssh": worker_asyncssh, "fabric": worker_fabric, "shipyard": worker_shipyard}


def worker_main(argv: list[str]) -> int:
    name, spec_path, workload = argv
    spec = json.loads(Path(spec_path).read_text())
    WORKERS[name](spec, workload)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        sys.exit(worker_main(sys.argv[2:]))
    print("usage: _tools.py worker {asyncssh,fabric,shipyard} SPEC.json {run,put}", file=sys.stderr)
    sys.exit(2)
