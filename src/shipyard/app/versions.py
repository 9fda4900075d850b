"""Config versions of the served project: publish (reload or upload), list, read, pin.

Where versions live (the pitfall of project-relative state): the served directory is always
the current version. Publishing an upload validates it in a temporary directory first, then
writes its files into the served directory (each aside, then renamed) and removes the files it
no longer has, so the served directory, `reload`, the store's default SQLite file, the secret
key and local hosts' deploy roots stay where they were. A pinned older version is materialized
once under `<project>/.shipyard/versions/<id>/` and loaded with the served directory as its
state root (`Session.state_root`), so that deploying it reaches the same store, key and hosts.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.app import projectfiles
from shipyard.app.session import Session
from shipyard.errors import ConfigError, Problem
from shipyard.store.places import STATE_DIRECTORY

if TYPE_CHECKING:
    from shipyard.store.versions import ConfigVersion

VERSIONS_DIRECTORY = "versions"  # under the state directory: never part of a version itself


@dataclass(frozen=True)
class VersionView:
    """One config version: number, hash, how it came, who published it when, its files."""

    id: int
    hash: str
    source: str
    message: str
    published_by: str
    published_at: datetime
    files: dict[str, str]  # path -> content hash

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "hash": self.hash,
            "source": self.source,
            "message": self.message,
            "published_by": self.published_by,
            "published_at": self.published_at.isoformat(),
            "files": dict(sorted(self.files.items())),
        }

    @classmethod
    def of(cls, found: ConfigVersion, mask: Callable[[str], str]) -> VersionView:
        """The stored version with its message masked by `mask`."""
        return cls(
            found.id, found.hash, found.source, mask(found.message), found.published_by,
            found.published_at, dict(found.files),
        )  # fmt: skip


@dataclass(frozen=True)
class Published:
    """The version a publish made or found (`created` False: the same content existed)."""

    version: VersionView
    created: bool

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version.to_json(), "created": self.created}


def project_file_name(session: Session) -> str:
    """The project file's path relative to the project root (`shipyard.yaml`)."""
    loaded = session.load()
    return loaded.file.relative_to(loaded.root).as_posix()


def state_files(session: Session) -> list[Path]:
    """The store's own files when it is a SQLite file (with its journal companions): a store
    kept in the project directory is never part of a version, nor overwritten by one."""
    from shipyard.store.engine import sqlite_path

    path = sqlite_path(session.database_url())
    if path is None:
        return []
    return [path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))]


def publish_directory(session: Session, *, source: str, message: str = "") -> Published:
    """Publish the served directory as `session` loaded it (a version with the same files,
    when there is one, is returned as it is)."""
    files = projectfiles.read_project(session.root, state_files(session))
    return _publish(session, files, source=source, message=message)


def reload(session: Session, *, actor: str, message: str = "") -> tuple[Published, Session]:
    """Read the served directory of `session` (the served one) again: validated (ConfigError
    with every problem, nothing published), published by `actor` if changed, and a session of
    it that takes over the store from `session`."""
    fresh = session.over(session.project_file)
    fresh.flatten(empty_ok=True)
    published = publish_directory(fresh.acting_as(actor), source="reload", message=message)
    fresh.take_store_from(session)
    return published, fresh


def publish_upload(
    session: Session, files: Mapping[str, bytes], *, actor: str, message: str = ""
) -> tuple[Published, Session]:
    """Validate the uploaded project, make it the served directory's content and publish it.

    The files are loaded and flattened in a temporary directory first (with the served
    project's state root: its secret key); an invalid project raises ConfigError with every
    problem, file names relative to the project, and nothing is written or published. `actor`
    publishes it. Returns the version and a session of it that takes over the store from
    `session` (the served one), for the server to serve from now on.
    """
    projectfiles.check_upload(files)
    main = project_file_name(session)
    if main not in files:
        raise ConfigError(Problem(f"the upload has no project file {main}", file=main))
    _trial(session, files)
    published = _publish(session.acting_as(actor), files, source="upload", message=message)
    return published, _written(session, files)


def _trial(session: Session, files: Mapping[str, bytes]) -> None:
    """Load and flatten `files` in a temporary directory (with the served project's state
    root: its secret key); ConfigError with every problem, named as in the project."""
    main = project_file_name(session)
    with tempfile.TemporaryDirectory(prefix="shipyard-trial-") as scratch:
        projectfiles.write_files(Path(scratch), files)
        trial = session.over(Path(scratch) / main, state_root=session.home)
        try:
            trial.flatten(empty_ok=True)
        except ConfigError as invalid:
            raise ConfigError([_relative(p, Path(scratch)) for p in invalid.problems]) from None


def _written(session: Session, files: Mapping[str, bytes]) -> Session:
    """`files` made the served directory's content, and a session of them that takes over the
    store from `session` (the served one)."""
    projectfiles.replace_project(session.root, files, state_files(session))
    fresh = session.over(session.project_file)
    fresh.flatten(empty_ok=True)
    fresh.take_store_from(session)
    return fresh


def _relative(problem: Problem, scratch: Path) -> Problem:
    """A problem found in the scratch copy, its file named as in the project."""
    if not problem.file:
        return problem
    where = Path(problem.file)
    for base in (scratch, scratch.resolve()):
        absolute = where if where.is_absolute() else (Path.cwd() / where)
        for candidate in (absolute, absolute.resolve()):
            if candidate.is_relative_to(base):
                file = candidate.relative_to(base).as_posix()
                return Problem(problem.message, problem.path, file, problem.line, problem.column)
    return problem


def _publish(
    session: Session, files: Mapping[str, bytes], *, source: str, message: str
) -> Published:
    found, created = session.store.publish_version(
        version_hash=projectfiles.version_hash(files), files=files, source=source,
        message=message, actor=session.actor,
    )  # fmt: skip
    return Published(VersionView.of(found, session.masker().text), created)


@dataclass(frozen=True)
class VersionPage:
    versions: tuple[VersionView, ...]
    next_before: int | None

    def to_json(self) -> dict[str, Any]:
        return {"versions": [v.to_json() for v in self.versions], "next_before": self.next_before}


def versions(session: Session, *, limit: int = 50, before: int | None = None) -> VersionPage:
    """The newest versions first, a page at a time."""
    found = session.store.versions(limit=limit + 1, before=before)
    shown = tuple(VersionView.of(v, session.masker().text) for v in found[:limit])
    return VersionPage(shown, shown[-1].id if len(found) > limit else None)


def version(session: Session, version_id: int) -> VersionView:
    """One version (RecordNotFound if there is none)."""
    return VersionView.of(session.store.version(version_id), session.masker().text)


def pinned(session: Session, version_id: int) -> Session:
    """A session of version `version_id`: its files materialized once under the state
    directory, its state (store, secret key, local hosts) the served project's. The copy never
    closes the store it shares."""
    files = session.store.version_files(version_id)
    home = session.home
    directory = home / STATE_DIRECTORY / VERSIONS_DIRECTORY / str(version_id)
    projectfiles.materialize(directory, files)
    main = project_file_name(session)
    return session.over(directory / main, state_root=home)


def version_revision(session: Session, version_id: int, instance: str) -> str:
    """The revision `instance` has in version `version_id` (what deploying it made)."""
    from shipyard.app.selectors import find_instance

    return find_instance(pinned(session, version_id).flatten(), instance).revision


def record_served(session: Session, version_id: int, *, replica: str) -> None:
    """Make `version_id` the one every replica serves (the store keeps which)."""
    session.store.serve_version(version_id, by=replica)


def served(session: Session) -> int | None:
    """The version the replicas serve, as the store has it (None before any)."""
    return session.store.served_version()


def follow(session: Session, version_id: int) -> Session:
    """Serve `version_id` from this replica's directory: its files (from the store) written
    into the served directory, as an upload would, and a session of them that takes over the
    store from `session`. ConfigError (nothing written) when they do not load."""
    files = session.store.version_files(version_id)
    _trial(session, files)
    return _written(session, files)
