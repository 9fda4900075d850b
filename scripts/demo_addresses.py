#!/usr/bin/env python3
"""The loopback addresses the demo listens on: the example's own when free, else a free set.

    demo_addresses.py PROJECT_FILE

Reads the hello example's project (each host binds `vars.bind`; greeter listens on its ports,
front's nginx on `strategy.front` and its slots on `upstream_host`), and checks that every one of
those address:port pairs can be bound. When one is taken, the same layout moves to the next free
127.0.N network and PROJECT_FILE is rewritten. `SHIPYARD_DEMO_NET=127.0.N` chooses the network
instead; if it (or every candidate) is taken, the error names each address in use and how to
choose others. Prints the first host's address (the demo's curl target) on stdout.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterable
from pathlib import Path

from shipyard.cli.init_project import in_use
from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.config.models import Strategy
from shipyard.config.topology import all_hosts

NET_VARIABLE = "SHIPYARD_DEMO_NET"
CANDIDATE_NETS = range(11, 255)

Listener = tuple[str, int]


def listeners(project_file: Path) -> tuple[list[str], list[Listener]]:
    """The hosts' bind addresses (in file order) and every address:port the demo listens on."""
    flat = flatten_project(load_project(project_file), secret_key=b"")
    binds = {
        name: str(ref.host.vars["bind"]) for name, ref in all_hosts(flat.loaded.project).items()
    }
    found: set[Listener] = set()
    for instance in flat.instances.values():
        config = instance.config
        strategy = Strategy.model_validate(config["strategy"])
        if strategy.uses_slots:
            front, _, port = str(config["strategy"]["front"]).rpartition(":")
            found.add((front, int(port)))
            http = int(config["ports"]["http"])
            upstream = str(config["strategy"]["upstream_host"])
            ports = config["ports"]
            found.update(
                (upstream, int(ports.get(c, http + n))) for n, c in ((1, "blue"), (2, "green"))
            )
        else:
            found.update((binds[instance.host], int(p)) for p in config["ports"].values())
    return list(binds.values()), sorted(found)


def network(addresses: Iterable[str]) -> str:
    """The /24 the hosts share ("127.0.10"); the demo's layout moves as one network."""
    nets = {a.rpartition(".")[0] for a in addresses}
    if len(nets) != 1:
        raise SystemExit(f"demo: the hosts' addresses are not on one network: {sorted(nets)}")
    return nets.pop()


def moved(address: str, old: str, new: str) -> str:
    return new + address[len(old) :] if address.startswith(old + ".") else address


def taken_on(net: str, old: str, wanted: list[Listener]) -> list[str]:
    pairs = [(moved(a, old, net), p) for a, p in wanted]
    return [f"{a}:{p}" for a, p in pairs if in_use(p, a)]


def choose(project_file: Path, env: dict[str, str]) -> str:
    """The network to use; PROJECT_FILE rewritten for it. Exits 1 naming what is taken."""
    binds, wanted = listeners(project_file)
    old = network(binds)
    chosen = env.get(NET_VARIABLE, "").strip()
    if chosen and not re.fullmatch(r"127\.\d{1,3}\.\d{1,3}", chosen):
        raise SystemExit(
            f"demo: {NET_VARIABLE}={chosen!r}: expected a loopback network like 127.0.42"
        )
    first = chosen or old
    taken = taken_on(first, old, wanted)
    if not taken:
        return _rewrite(project_file, binds, old, first)
    if not chosen:
        for n in CANDIDATE_NETS:
            net = f"127.0.{n}"
            if net != old and not taken_on(net, old, wanted):
                print(
                    f"demo: {', '.join(taken)} in use by another program;"
                    f" the demo's hosts listen on {net}.x instead",
                    file=sys.stderr,
                )
                return _rewrite(project_file, binds, old, net)
    hosts = ", ".join(moved(b, old, first) for b in binds)
    ports = ", ".join(sorted({t.rpartition(":")[2] for t in taken}))
    everywhere = (
        ""
        if chosen
        else "; every 127.0.N network tried has a port taken too"
        f" (does a program listen on all addresses, 0.0.0.0, on {ports}?)"
    )
    raise SystemExit(
        f"demo: address already in use: {', '.join(taken)} (the demo's hosts are {hosts})"
        f"{everywhere}.\nStop the program holding it, or choose other loopback addresses:"
        f" {NET_VARIABLE}=127.0.N make demo (N from 1 to 254)"
    )


def _rewrite(project_file: Path, binds: list[str], old: str, net: str) -> str:
    if net != old:
        text = project_file.read_text()
        for address in binds:
            pattern = rf"(?<![\d.]){re.escape(address)}(?![\d])"
            text = re.sub(pattern, moved(address, old, net), text)
        project_file.write_text(text)
    return moved(binds[0], old, net)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    print(choose(Path(argv[0]), dict(os.environ)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
