"""Config versions: each loaded state of the served project, its files stored content-addressed.

A blob is a file's content under its sha256; a version is the map {relative path: blob hash},
its own hash over the sorted (path, blob hash) pairs (computed by the caller, app/versions.py),
who published it, when and how (start, reload, upload). Publishing content identical to a
version already stored returns that version: the hash column is unique.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, RowMapping, func, insert, select, update

from shipyard.errors import StoreConflict
from shipyard.store.journal import Journal, must_exist
from shipyard.store.records import as_utc
from shipyard.store.tables import config_blobs, config_versions, served_version


@dataclass(frozen=True)
class ConfigVersion:
    """One published version: its number, hash, files (path -> blob hash) and who made it."""

    id: int
    hash: str
    files: dict[str, str]
    source: str
    message: str
    published_by: str
    published_at: datetime


def blob_hash(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


class Versions(Journal):
    """The store's config versions; each public method is one transaction."""

    def publish_version(
        self,
        *,
        version_hash: str,
        files: Mapping[str, bytes],
        source: str,
        message: str,
        actor: str,
    ) -> tuple[ConfigVersion, bool]:
        """Store `files` as a version (blobs inserted if absent, an audit line
        `config.publish`); a version with the same hash is returned as it is. Returns the
        version and whether it was made now."""
        known = self.version_by_hash(version_hash)
        if known is not None:
            return known, False
        hashes = {path: blob_hash(content) for path, content in sorted(files.items())}
        try:
            with self._write() as conn:
                self._add_blobs(conn, files, hashes)
                made = conn.execute(
                    insert(config_versions)
                    .values(
                        hash=version_hash, files=hashes, source=source, message=message,
                        published_by=actor, published_at=self._clock(),
                    )
                    .returning(config_versions.c.id)
                ).scalar_one()  # fmt: skip
                detail = {"hash": version_hash, "source": source, "files": len(hashes)}
                self._audit(conn, actor, "config.publish", f"version:{made}", "success", detail)
                return _version(self._version_row(conn, int(made))), True
        except StoreConflict:
            # A twin publish (another replica) stored the same hash between our read and write.
            known = self.version_by_hash(version_hash)
            if known is None:
                raise
            return known, False

    def _add_blobs(
        self, conn: Connection, files: Mapping[str, bytes], hashes: Mapping[str, str]
    ) -> None:
        wanted = set(hashes.values())
        present = set(
            conn.execute(
                select(config_blobs.c.hash).where(config_blobs.c.hash.in_(sorted(wanted)))
            ).scalars()
        )
        fresh: dict[str, bytes] = {}
        for path, content in files.items():
            if hashes[path] not in present:
                fresh[hashes[path]] = content
        if fresh:
            rows = [{"hash": h, "size": len(c), "content": c} for h, c in sorted(fresh.items())]
            conn.execute(insert(config_blobs), rows)

    def versions(self, *, limit: int = 50, before: int | None = None) -> list[ConfigVersion]:
        """The newest versions first; `before` (a version number) starts below it."""
        query = select(config_versions).order_by(config_versions.c.id.desc()).limit(limit)
        if before is not None:
            query = query.where(config_versions.c.id < before)
        return self._all(query, _version)

    def version(self, version_id: int) -> ConfigVersion:
        """One version, or RecordNotFound."""
        with self._read() as conn:
            return _version(self._version_row(conn, version_id))

    def newest_version(self) -> ConfigVersion | None:
        with self._read() as conn:
            newest = conn.execute(select(func.max(config_versions.c.id))).scalar_one()
            return _version(self._version_row(conn, int(newest))) if newest else None

    def serve_version(self, version_id: int, *, by: str) -> None:
        """Make `version_id` the version every server replica serves (`by`: the replica)."""
        values = {"version_id": version_id, "served_by": by, "served_at": self._clock()}
        with self._write() as conn:
            self._version_row(conn, version_id)  # RecordNotFound for an unknown version
            changed = conn.execute(
                update(served_version).where(served_version.c.id == 1).values(**values)
            ).rowcount
            if not changed:
                conn.execute(insert(served_version).values(id=1, **values))

    def served_version(self) -> int | None:
        """The version the replicas serve (None before any server recorded one)."""
        with self._read() as conn:
            found = conn.execute(
                select(served_version.c.version_id).where(served_version.c.id == 1)
            ).scalar_one_or_none()
            return None if found is None else int(found)

    def version_by_hash(self, version_hash: str) -> ConfigVersion | None:
        query = select(config_versions).where(config_versions.c.hash == version_hash)
        with self._read() as conn:
            found = conn.execute(query).mappings().first()
            return _version(found) if found else None

    def version_files(self, version_id: int) -> dict[str, bytes]:
        """The files of a version, path -> content."""
        with self._read() as conn:
            found = _version(self._version_row(conn, version_id))
            wanted = sorted(set(found.files.values()))
            query = select(config_blobs.c.hash, config_blobs.c.content).where(
                config_blobs.c.hash.in_(wanted)
            )
            blobs = {h: bytes(c) for h, c in conn.execute(query)}
        return {path: blobs[h] for path, h in sorted(found.files.items())}

    def _version_row(self, conn: Connection, version_id: int) -> RowMapping:
        query = select(config_versions).where(config_versions.c.id == version_id)
        return must_exist(conn.execute(query).mappings().first(), "version", str(version_id))


def _version(row: RowMapping) -> ConfigVersion:
    files = row["files"]
    return ConfigVersion(
        id=int(row["id"]),
        hash=str(row["hash"]),
        files={str(k): str(v) for k, v in dict(files).items()},
        source=str(row["source"]),
        message=str(row["message"]),
        published_by=str(row["published_by"]),
        published_at=as_utc(row["published_at"]),
    )
