"""Benchmark: validate, flatten and plan a project of 500 hosts, 20 services and 50 templates.

Every service runs on every host (10,000 instances), every instance renders config strings and
one file. Prints wall time per phase (medians of the runs: the figure the README quotes), the
time of the whole script (the project's build and every run, what `time` around it shows, so
about runs x total plus a second), the load average and the process's peak memory.
Goal: < 2 s, < 300 MiB.

    .venv/bin/python bench/plan.py [--hosts 500] [--services 20] [--templates 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from shipyard.config.flatten import flatten_project
from shipyard.config.loader import load_project
from shipyard.plan.rollout import Target, make_plan


def build_project(directory: Path, hosts: int, services: int, templates: int) -> Path:
    sites_count = max(1, hosts // 50)
    sites: dict[str, object] = {}
    for s in range(sites_count):
        members = {}
        for h in range(s * hosts // sites_count, (s + 1) * hosts // sites_count):
            members[f"h{h:04d}"] = {
                "address": f"10.{h // 250}.{h % 250}.1",
                "labels": ["web" if h % 2 else "batch"],
                "vars": {"rack": f"r{h % 40}", "weight": h % 7},
            }
        sites[f"site{s:02d}"] = {"hosts": members, "vars": {"region": f"region-{s % 4}"}}
    tmpl: dict[str, object] = {
        "t00": {
            "commands": {"start": ["app", "--port", "{{ ports.http }}", "--rack", "{{ rack }}"]},
            "env": {"REGION": "{{ region }}", "INSTANCE": "{{ instance }}", "MODE": "prod"},
            "health": {"http": "http://{{ host.address }}:{{ ports.http }}/healthz"},
            "ports": {"http": 8000},
            "files": {"app.conf": "app.conf.j2"},
            "locked": ["health"],
        }
    }
    for t in range(1, templates):
        parent = f"t{(t - 1) // 3:02d}"  # a tree three wide: chains up to four deep
        tmpl[f"t{t:02d}"] = {
            "extends": parent,
            "env": {f"LEVEL_{t}": str(t)},
            "ports": {"http": 8000 + t},
            "vars": {"weight_base": t},
        }
    svc: dict[str, object] = {}
    for i in range(services):
        deps = [f"svc{(i - 1) // 2:02d}"] if i else []  # a binary tree: five waves for 20
        svc[f"svc{i:02d}"] = {
            "template": f"t{(i * 7) % templates:02d}",
            "sites": list(sites),
            "depends_on": deps,
            "overrides": {"env": {"SERVICE_INDEX": str(i)}},
        }
    project = {
        "name": "bench",
        "vars": {"weight_base": 0},
        "sites": sites,
        "templates": tmpl,
        "services": svc,
    }
    (directory / "app.conf.j2").write_text(
        "[app]\nname = {{ instance }}\nregion = {{ region }}\nrack = {{ rack }}\n"
        "weight = {{ weight + weight_base }}\n"
        "{% for l in host.labels %}label = {{ l }}\n{% endfor %}"
    )
    path = directory / "shipyard.yaml"
    path.write_text(yaml.safe_dump(project, sort_keys=False))
    return path


def run_once(path: Path) -> dict[str, float]:
    times: dict[str, float] = {}
    cpu = time.process_time()
    start = time.perf_counter()
    loaded = load_project(path)
    times["load+validate"] = time.perf_counter() - start
    mark = time.perf_counter()
    flat = flatten_project(loaded, secret_key=b"bench-secret-key-0123456789", environ={})
    times["flatten"] = time.perf_counter() - mark
    mark = time.perf_counter()
    targets = [
        Target(i.name, i.service, i.host, i.site, i.revision) for i in flat.instances.values()
    ]
    plan = make_plan(targets, flat.service_edges(), {}, flat.instances)
    times["plan"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - start
    times["total cpu"] = time.process_time() - cpu  # less swayed by other work on the machine
    assert len(plan.steps) == len(flat.instances)
    times["instances"] = len(flat.instances)
    times["waves"] = len(plan.waves)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=500)
    parser.add_argument("--services", type=int, default=20)
    parser.add_argument("--templates", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = build_project(Path(tmp), args.hosts, args.services, args.templates)
        results = [run_once(path) for _ in range(args.runs)]
    script = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"project: {args.hosts} hosts, {args.services} services, {args.templates} templates, "
        f"{int(results[0]['instances'])} instances, {int(results[0]['waves'])} waves"
    )
    for phase in ("load+validate", "flatten", "plan", "total", "total cpu"):
        values = [r[phase] for r in results]
        print(
            f"  {phase:<14} median {statistics.median(values):6.3f} s  (runs: "
            + ", ".join(f"{v:.3f}" for v in values)
            + ")"
        )
    total = statistics.median(r["total"] for r in results)
    print(f"  whole script   {script:6.3f} s  (project build and {args.runs} runs)")
    print(f"  peak memory    {peak_mib:6.1f} MiB (whole process)")
    print("  load average   " + ", ".join(f"{v:.2f}" for v in os.getloadavg()) + " (1, 5, 15 min)")
    ok = total < 2.0 and peak_mib < 300
    print(f"goal (< 2 s, < 300 MiB): {'met' if ok else 'NOT met'}")
    sys.exit(0)


if __name__ == "__main__":
    main()
