"""Where each instance is and its revision, without flattening the project when nothing it is
made of has changed: what `status` and `plan` need.

Flattening 10,000 instances (rendering each one's strings and files, hashing its config) is
most of what `status` and `plan` cost. Their answer depends only on the project's files, the
code that derives configs, where the project lives (hosts' default roots are below it) and the
secrets' values. The index is kept in the project's state directory (`.shipyard/index.json`)
under a key made of all of these: the content of every file below the project directory (not
its state, its store, `.git` or caches), the project as read with its includes (which may lie
outside it), this version of `shipyard.config`'s source, the
project's paths, and each secret's keyed fingerprint (never its value). Any change to any of
them is another key, and the index is made again by flattening. A project whose files add up
to more than MAX_HASHED bytes is flattened every time (hashing would cost what it saves).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.app.session import Session
    from shipyard.config.instance import Flattened
    from shipyard.config.loader import LoadedProject

FORMAT = 1
INDEX_FILE = "index.json"
MAX_HASHED = 64 * 1024 * 1024
SKIPPED_DIRS = frozenset({".shipyard", ".git", "__pycache__", ".mypy_cache", ".ruff_cache"})


@dataclass(frozen=True)
class Placed:
    """One instance as status and plan see it."""

    name: str
    service: str
    host: str
    site: str
    revision: str
    uses_slots: bool


@dataclass(frozen=True)
class InstanceIndex:
    """Every instance of the project, in service-map order (as `Flattened.instances`)."""

    loaded: LoadedProject
    instances: Mapping[str, Placed]
    from_cache: bool = False

    def service_edges(self) -> dict[str, list[str]]:
        return {n: list(s.depends_on) for n, s in self.loaded.project.services.items()}

    @classmethod
    def of(cls, flat: Flattened) -> InstanceIndex:
        placed = {
            name: Placed(i.name, i.service, i.host, i.site, i.revision, i.strategy.uses_slots)
            for name, i in flat.instances.items()
        }
        return cls(flat.loaded, placed)


def instance_index(session: Session) -> InstanceIndex:
    """The index of `session`'s project: kept, when its key still holds, else flattened (and
    kept for next time when the state directory can be written)."""
    flat = session.flattened_if_done()
    if flat is not None:
        return InstanceIndex.of(flat)
    loaded = session.load()
    key = index_key(session, loaded)
    path = loaded.home / ".shipyard" / INDEX_FILE
    if key is not None:
        found = _read(path, key, loaded)
        if found is not None:
            return found
    made = InstanceIndex.of(session.flatten())
    if key is not None:
        _write(path, key, made)
    return made


def index_key(session: Session, loaded: LoadedProject) -> str | None:
    """What the index of `loaded` is made of, hashed; None when it is not to be kept."""
    digest = hashlib.sha256(f"shipyard-index {FORMAT}\0".encode())
    digest.update(_code_digest())
    for place in (loaded.file, loaded.root, loaded.home):
        digest.update(f"{place.absolute()}\0".encode())
    # The project as read, its includes merged in: an include may lie outside the directory.
    digest.update(json.dumps(loaded.raw, sort_keys=True, default=str).encode())
    from shipyard.store.quick import sqlite_files

    store = set(sqlite_files(session.database_url()))  # what status reads, not what it derives
    hashed = 0
    for relative, path in _project_files(loaded.root):
        if path.absolute() in store:
            continue
        try:
            data = path.read_bytes()
        except OSError:
            return None
        hashed += len(data)
        if hashed > MAX_HASHED:
            return None
        digest.update(f"{relative}\0{len(data)}\0".encode())
        digest.update(hashlib.sha256(data).digest())
    secrets = session.secret_fingerprints(loaded)
    if secrets is None:  # a secret that cannot be read: flattening says so
        return None
    for name, mark in sorted(secrets.items()):
        digest.update(f"secret\0{name}\0{mark}\0".encode())
    return digest.hexdigest()


@cache
def _code_digest() -> bytes:
    """This version's source of `shipyard.config`, which derives every config and revision."""
    import shipyard
    import shipyard.config

    digest = hashlib.sha256(str(getattr(shipyard, "__version__", "")).encode())
    for source in sorted(Path(shipyard.config.__file__).parent.glob("*.py")):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.digest()


def _project_files(root: Path) -> Iterator[tuple[str, Path]]:
    """Every file below `root` (its state, version control and caches left out), sorted."""
    found: list[tuple[str, Path]] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in files:
            path = Path(directory) / name
            if path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    yield from sorted(found)


def _read(path: Path, key: str, loaded: LoadedProject) -> InstanceIndex | None:
    try:
        kept: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if kept.get("format") != FORMAT or kept.get("key") != key:
        return None
    try:
        placed = {row[0]: Placed(*row) for row in kept["instances"]}
    except (KeyError, TypeError):
        return None
    return InstanceIndex(loaded, placed, from_cache=True)


def _write(path: Path, key: str, made: InstanceIndex) -> None:
    """Kept atomically (a new file renamed over the old); a state directory that cannot be
    written keeps nothing."""
    rows = [
        [p.name, p.service, p.host, p.site, p.revision, p.uses_slots]
        for p in made.instances.values()
    ]
    text = json.dumps({"format": FORMAT, "key": key, "instances": rows}, separators=(",", ":"))
    with contextlib.suppress(OSError):
        path.parent.mkdir(mode=0o700, exist_ok=True)
        aside = path.with_name(f".{path.name}.{os.getpid()}")
        aside.write_text(text)
        aside.chmod(0o600)
        os.replace(aside, path)
