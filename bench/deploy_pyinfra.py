"""The pyinfra side of bench/deploy.py: a deploy file (`pyinfra -y INVENTORY deploy_pyinfra.py`).

It does the work of Shipyard's `restart` strategy the way a pyinfra user would write it: per
service, upload the release archive and extract it when it changed, switch `current`, write the
program file, load or restart the program under the host's supervisord, check its health. The
services come from the JSON file named by $BENCH_DEPLOY_SPEC (`services`: name, rev, archive);
the host's root directory from the inventory (`bench_dest`).
"""

import json
import os
from io import StringIO
from pathlib import Path

from pyinfra import host
from pyinfra.operations import files, server

SPEC = json.loads(Path(os.environ["BENCH_DEPLOY_SPEC"]).read_text())
ROOT = host.data.bench_dest
BASE = f"{ROOT}/pyinfra"
CONF = f"{ROOT}/supervisor/supervisord.conf"


def program_file(name: str, program: str, service_dir: str) -> str:
    return "\n".join(
        [
            f"[program:{program}]",
            "command=sleep infinity",
            f"directory={service_dir}/current",
            f'environment=SERVICE="{name}"',
            "autostart=true",
            "autorestart=true",
            "startsecs=1",
            "stopasgroup=true",
            "killasgroup=true",
            f"stdout_logfile={service_dir}/stdout.log",
            f"stderr_logfile={service_dir}/stderr.log",
            "",
        ]
    )


def restart_when(link, program):  # type: ignore[no-untyped-def]
    """Restart when `current` moved but the program file did not change (update restarts then)."""
    return lambda: link.did_change() and not program.did_change()


for service in SPEC["services"]:
    name, rev = service["name"], service["rev"]
    service_dir = f"{BASE}/{name}"
    release = f"{service_dir}/releases/{rev}"
    program = f"pyinfra-{name}"
    files.directory(name=f"{name}: release directory", path=release)
    archive = files.put(
        name=f"{name}: upload the release", src=service["archive"], dest=f"{release}.tar.gz"
    )
    server.shell(
        name=f"{name}: extract the release",
        commands=[f"tar -xzf {release}.tar.gz -C {release}"],
        _if=archive.did_change,
    )
    link = files.link(
        name=f"{name}: switch current", path=f"{service_dir}/current", target=f"releases/{rev}"
    )
    loaded = files.put(
        name=f"{name}: program file",
        src=StringIO(program_file(name, program, service_dir)),
        dest=f"{ROOT}/supervisor/programs/{program}.conf",
        mode="600",
    )
    server.shell(
        name=f"{name}: load the program",
        commands=[f"supervisorctl -c {CONF} update {program}"],
        _if=loaded.did_change,
    )
    server.shell(
        name=f"{name}: restart the program",
        commands=[f"supervisorctl -c {CONF} restart {program}"],
        _if=restart_when(link, loaded),
    )
    server.shell(
        name=f"{name}: health check", commands=[f"test -f {service_dir}/current/config.txt"]
    )
