"""Small projects and fleets of fake hosts for the deploy layer's tests.

A `Fleet` is one FakeExecutor per host, all writing one journal (so a test can see the order of
calls across hosts), scripted as healthy hosts answer: `prepare` finds the release missing, every
program is RUNNING, every health check passes. A test then makes one thing go wrong by what the
host is asked (a step, a service's health check), never by the order of the calls.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shipyard.commands.control import HEALTH_FILE
from shipyard.config.flatten import Flattened, Instance, flatten_project
from shipyard.config.loader import load_project
from shipyard.config.topology import HostRef
from shipyard.deploy.runs import Outcome
from shipyard.executors.base import Executor, Script
from shipyard.executors.fake import Call, FakeExecutor, Journal

ROOT = "/srv/t"
SUPERVISORD_CONF = f"{ROOT}/supervisor/supervisord.conf"
SECRET_KEY = b"deploy-test-secret-key-0123456789"


def health_command(service: str) -> str:
    """The health check command of `service` in these projects (what a test makes fail); its
    argument is the project's `release`, so a test can fail one release's check, not another's."""
    return f"check-{service}"


def service_dir(service: str) -> str:
    return f"{ROOT}/{service}"


def write_project(
    directory: Path,
    services: dict[str, dict[str, Any]],
    *,
    hosts: Iterable[str] = ("h1", "h2", "h3"),
    sites: dict[str, Iterable[str]] | None = None,
    release: str = "v1",
    secret: str | None = None,
    supervisor: str = "supervisord",
) -> Path:
    """A project of `services` (name -> hosts, depends_on, strategy, health...) on fake hosts
    (site `eu` holds `hosts` unless `sites` says otherwise); `release` changes every revision;
    a `secret` reaches every service's environment as TOKEN (from a file)."""
    placed = sites or {"eu": list(hosts)}
    host_body: dict[str, Any] = {"address": "192.0.2.1", "root": ROOT, "supervisor": supervisor}
    body: dict[str, Any] = {
        "name": "deploytest",
        "vars": {"release": release},
        "templates": {
            "base": {
                "commands": {"start": ["serve"]},
                "env": {"RELEASE": "{{ release }}"},
                "ports": {"http": 8000},
            }
        },
        "sites": {
            site: {"hosts": {h: dict(host_body) for h in names}} for site, names in placed.items()
        },
        "services": {},
    }
    directory.mkdir(parents=True, exist_ok=True)
    if secret is not None:
        (directory / "token.txt").write_text(secret + "\n")
        body["secrets"] = {"token": {"file": "token.txt"}}
        body["templates"]["base"]["env"]["TOKEN"] = "{{ secrets.token }}"
    for name, spec in services.items():
        service: dict[str, Any] = {"template": "base", "hosts": list(spec.get("hosts", ["h1"]))}
        if spec.get("depends_on"):
            service["depends_on"] = list(spec["depends_on"])
        overrides: dict[str, Any] = {
            "health": spec.get(
                "health",
                {
                    "command": [health_command(name), "{{ release }}"],
                    "retries": 1,
                    "interval": 0,
                    "timeout": 1,
                },
            )
        }
        if "strategy" in spec:
            overrides["strategy"] = spec["strategy"]
        if "ports" in spec:
            overrides["ports"] = spec["ports"]
        if "install" in spec:
            overrides["commands"] = {"install": list(spec["install"])}
        service["overrides"] = overrides
        body["services"][name] = service
    path = directory / "shipyard.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    return path


def flatten(path: Path) -> Flattened:
    return flatten_project(load_project(path), secret_key=SECRET_KEY, environ={})


@dataclass
class Fleet:
    """Fake hosts by name, answering as healthy hosts do until a test says otherwise."""

    services: list[str]
    hosts: dict[str, FakeExecutor] = field(default_factory=dict)
    journal: Journal = field(default_factory=list)
    _states: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def of(cls, flat: Flattened) -> Fleet:
        fleet = cls(sorted({i.service for i in flat.instances.values()}))
        for name in sorted({i.host for i in flat.instances.values()}):
            fleet.add(name)
        return fleet

    def add(self, name: str) -> FakeExecutor:
        fake = FakeExecutor(name, root=ROOT, journal=self.journal)
        self.hosts[name] = fake
        fake.reply_part("echo empty", step="prepare", stdout="empty\n")
        self._states[name] = {}
        self._answer_status(name)
        return fake

    def connect(self, ref: HostRef) -> Executor:
        return self.hosts[ref.name]

    def __getitem__(self, host: str) -> FakeExecutor:
        return self.hosts[host]

    # What goes wrong.

    def fail_health(
        self,
        host: str,
        service: str,
        answer: str = "503 Service Unavailable",
        *,
        release: str | None = None,
    ) -> None:
        """`service`'s health check (of one `release`, or any) fails on `host`, in the host
        step and in a soak alike."""
        words = " ".join([health_command(service), *([release] if release else [])])
        for step in ("health", "soak"):
            self.hosts[host].reply_part(words, step=step, exit_status=1, stdout=answer)

    def fail_soak(
        self,
        host: str,
        service: str,
        answer: str = "503 Service Unavailable",
        *,
        release: str | None = None,
    ) -> None:
        """`service`'s health check passes in the deployment's host step, fails when soaked."""
        words = " ".join([health_command(service), *([release] if release else [])])
        self.hosts[host].reply_part(words, step="soak", exit_status=1, stdout=answer)

    def crash(self, host: str, service: str, state: str = "FATAL") -> None:
        """`service`'s program on `host` is in `state` (supervisord's word) after its restart."""
        self._states[host][service] = state
        self._answer_status(host)

    def fail_step(self, host: str, service: str, step: str, stderr: str) -> None:
        """The part of host step `step` (prepare, switch, restart, ...) for `service` fails."""
        self.hosts[host].reply_part(service_dir(service), step=step, exit_status=1, stderr=stderr)

    def previous(self, before: Instance) -> None:
        """The host of `before` has its release live: the next switch replaces `current`
        naming it, and the release holds its own health check (what a switch back checks)."""
        fake, layout = self.hosts[before.host], service_dir(before.service)
        fake.reply_part(layout, step="switch", stdout=f"releases/{before.revision}\n")
        fake.reply_part(
            f"{layout}/releases/{before.revision}/{HEALTH_FILE}",
            step="read health check",
            stdout=json.dumps(before.config.get("health")),
        )

    def _answer_status(self, host: str) -> None:
        """supervisord's RPC status of every service's program; for a systemd host, one
        `systemctl is-active` word per unit asked about (all active: only supervisord crashes)."""
        lines = [
            f"{s} {self._states[host].get(s, 'RUNNING')} pid 4242, uptime 0:00:01\n"
            for s in self.services
        ]
        fake = self.hosts[host]
        fake.reply_part(f"{SUPERVISORD_CONF} status", step="health", stdout="".join(lines))
        # Lines beyond the units asked about are left unread (parse_states zips them).
        active = "active\n" * len(self.services)
        fake.reply_part("systemctl is-active", step="health", stdout=active)

    # What the hosts were asked.

    def steps_for(self, service: str) -> list[tuple[str, str]]:
        """(host, step) of every batch part and script that worked on `service`, in order."""
        return [(host, call.step) for host, call in self.journal if _touches(call, service)]

    def first_and_last(self, service: str) -> tuple[int, int]:
        """Journal positions of the first and last call that worked on `service`."""
        at = [i for i, (_, call) in enumerate(self.journal) if _touches(call, service)]
        assert at, f"no host was asked anything about {service}"
        return at[0], at[-1]

    def switched(self, host: str, service: str) -> bool:
        """Whether `current` of `service` on `host` was switched to a release."""
        return any(
            part.step == "switch" and service_dir(service) + "/" in part.text
            for part in self.hosts[host].parts
        )


def _touches(call: Call, service: str) -> bool:
    marker = service_dir(service) + "/"
    if any(marker in text for text in call.parts):
        return True
    return isinstance(call.command, Script) and marker in call.command.text


def by_instance(outcomes: Iterable[Outcome]) -> dict[str, Outcome]:
    return {o.instance: o for o in outcomes}


def results(outcomes: Iterable[Outcome]) -> dict[str, str]:
    return {o.instance: o.result for o in outcomes}


async def until(condition: Callable[[], bool], *, timeout: float = 5.0) -> None:
    """Wait until `condition()` holds (checked every few milliseconds), or fail the test."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"still not true after {timeout:g} s")
        await asyncio.sleep(0.005)
