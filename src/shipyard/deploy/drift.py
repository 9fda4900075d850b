"""Drift: where what a host runs differs from what the store says was deployed there. Pure:
the host's answer and the store's view are passed in.

The host tells (`Observed`) its host record, the links of the service, how the files of the
deployed release differ from the checksums recorded with it, the state of its program and where
supervisord's program file points; the store tells (`Expected`) the revision deployed and the
instance's lifecycle. `drift_of` compares them: each difference is one `Drift`, with what
differs in words. Nothing here changes anything: a redeploy (or `shipyard drift --accept`, for
files changed by hand) does.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shipyard.commands.inspect import FileChanges
from shipyard.commands.inventory import ReleaseLinks
from shipyard.commands.record import HostRecord


class DriftKind(StrEnum):
    RECORD = "record"  # the host record is missing or names another revision
    RELEASE = "release"  # the live link points at another release
    FILES = "files"  # files of the live release changed, missing or added by hand
    PROGRAM = "program"  # the program is not running as deployed (or runs while disabled)
    UNKNOWN = "unknown"  # a service on the host that the store does not know there


@dataclass(frozen=True)
class Drift:
    instance: str
    kind: DriftKind
    detail: str

    def to_json(self) -> dict[str, Any]:
        return {"instance": self.instance, "kind": self.kind.value, "detail": self.detail}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> Drift:
        return cls(str(value["instance"]), DriftKind(value["kind"]), str(value["detail"]))


@dataclass(frozen=True)
class Expected:
    """What the store says of one instance on its host."""

    instance: str
    service: str
    revision: str | None  # deployed; None: never deployed (or deleted)
    lifecycle: str  # active, disabled, deleted
    program: str  # the name its supervisor knows it by (a slot's, for blue/green: see `live`)
    bluegreen: bool = False


@dataclass(frozen=True)
class Observed:
    """What the host said of one instance's service."""

    record: HostRecord | None
    record_error: str | None  # the record is there but cannot be read
    links: ReleaseLinks
    files: FileChanges | None  # None: not checked (nothing deployed to compare)
    states: dict[str, str]  # program -> state (RUNNING, STOPPED, ...); missing: not loaded
    program_links: dict[str, str] | None  # supervisord's include: program -> file (None: systemd)


def live_program(expected: Expected, observed: Observed) -> str:
    """The program that should be running: a blue/green instance's live slot's."""
    slot = observed.record.slot if observed.record is not None else None
    if expected.bluegreen and slot:
        return f"{expected.service}-{slot}"
    return expected.program


def drift_of(expected: Expected, observed: Observed, service_dir: str) -> list[Drift]:
    """How the host differs from the store for one instance (empty: it does not)."""
    name = expected.instance
    if expected.lifecycle == "deleted" or expected.revision is None:
        return []
    found: list[Drift] = []

    def say(kind: DriftKind, detail: str) -> None:
        found.append(Drift(name, kind, detail))

    revision = expected.revision
    record = observed.record
    if observed.record_error is not None:
        say(DriftKind.RECORD, f"the host record cannot be read: {observed.record_error}")
    elif record is None:
        say(DriftKind.RECORD, "the host record is missing")
    elif record.revision != revision:
        say(
            DriftKind.RECORD,
            f"the host record names revision {record.revision[:12]}, the store {revision[:12]}",
        )
    link, linked = _live_link(expected, observed)
    if linked != revision:
        where = "is missing" if linked is None else f"points at {linked[:12]}"
        say(DriftKind.RELEASE, f"{link} {where}, the store deployed {revision[:12]}")
    files = observed.files
    if files is not None:
        if files.no_release:
            say(DriftKind.FILES, f"release {revision[:12]} is not on the host")
        elif files.any:
            say(DriftKind.FILES, describe_files(files))
    program = live_program(expected, observed)
    state = observed.states.get(program)
    if expected.lifecycle == "disabled":
        if state in ("RUNNING", "STARTING"):
            say(DriftKind.PROGRAM, f"it is disabled, but program {program} is {state}")
        return found
    if state != "RUNNING":
        say(DriftKind.PROGRAM, f"program {program} is {state or 'not loaded'}")
    if observed.program_links is not None:
        target = observed.program_links.get(program)
        if target is None:
            say(DriftKind.PROGRAM, f"program {program} is not in supervisord's include")
        elif not target.startswith(f"{service_dir.rstrip('/')}/"):
            say(DriftKind.PROGRAM, f"program {program}'s file points at {target}")
    return found


def unknown_services(
    host: str, recorded: tuple[str, ...], known: set[str], root: str
) -> list[Drift]:
    """A service with a host record under the deploy root that the store does not know on
    this host: deployed by hand, or by another store."""
    return [
        Drift(
            f"{service}@{host}",
            DriftKind.UNKNOWN,
            f"{root.rstrip('/')}/{service} holds a host record, but the store knows no such"
            " instance on this host",
        )
        for service in recorded
        if service not in known
    ]


def describe_files(files: FileChanges) -> str:
    parts = [
        f"{what}: {', '.join(paths)}"
        for what, paths in (
            ("changed", files.changed),
            ("missing", files.missing),
            ("added", files.added),
        )
        if paths
    ]
    if files.more:
        parts.append(f"and {files.more} more")
    return "files of the live release differ: " + "; ".join(parts)


def _live_link(expected: Expected, observed: Observed) -> tuple[str, str | None]:
    """The link that names the live release, and the revision it names."""
    slot = observed.record.slot if observed.record is not None else None
    if expected.bluegreen and slot in ("blue", "green"):
        return f"slot {slot}", observed.links.slot("blue" if slot == "blue" else "green")
    return "current", observed.links.current
