"""System-wide artifacts in the store: the matrix, the runs and their claims.

The matrix holds one cell per artifact x site x host: the last result there (success, failed
with its reason, unchanged), the version that attempt pushed or checked, the version the host
holds (`deployed_version`: a failure never changes it), when, and by which run.

One in flight: a run claims each (artifact, site) it pushes to, in the transaction that begins
it; a claim held by another run whose controller's lease is still running (store/leases.py,
by the database's clock) refuses the whole run (ArtifactBusy), one whose controller is gone is
taken over. Finishing the run releases its claims.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, and_, delete, insert, select, tuple_, update

from shipyard.errors import ArtifactBusy
from shipyard.store.journal import Journal
from shipyard.store.leases import db_now
from shipyard.store.records import JsonMapping
from shipyard.store.tables import (
    artifact_cells,
    artifact_claims,
    artifact_results,
    artifact_runs,
    controllers,
)

RESULTS = ("success", "failed", "unchanged")


@dataclass(frozen=True)
class ArtifactCell:
    """The last result of one artifact on one host of one site."""

    artifact: str
    site: str
    host: str
    status: str  # success, failed, unchanged
    version: str
    deployed_version: str | None
    reason: str
    at: datetime
    run_id: str


@dataclass(frozen=True)
class ArtifactResult:
    """What one run did with one artifact on one host."""

    artifact: str
    site: str
    host: str
    result: str  # success, failed, unchanged
    version: str
    reason: str = ""


@dataclass(frozen=True)
class ArtifactRun:
    id: str
    actor: str
    request: str
    status: str  # running, success, failed
    started_at: datetime
    finished_at: datetime | None
    results: tuple[ArtifactResult, ...]


class Artifacts(Journal):
    """The store's artifact matrix and runs; each public method is one transaction."""

    def begin_artifact_run(
        self,
        *,
        run_id: str,
        actor: str,
        request: str,
        controller_id: str,
        claims: Sequence[tuple[str, str]],
    ) -> None:
        """Record the run and claim each (artifact, site); ArtifactBusy if one is held."""
        now = self._clock()
        wanted = sorted(set(claims))
        with self._write() as conn:
            if wanted:
                self._take_claims(conn, wanted, run_id, controller_id, now)
            conn.execute(
                insert(artifact_runs).values(
                    id=run_id, actor=actor, request=request, status="running", started_at=now,
                    controller_id=controller_id, summary={},
                )
            )  # fmt: skip
            targets = [f"{a}@{s}" for a, s in wanted]
            self._audit(conn, actor, "artifacts.begin", f"artifact-run:{run_id}", "running",
                        {"request": request, "targets": targets})  # fmt: skip

    def _take_claims(
        self,
        conn: Connection,
        wanted: list[tuple[str, str]],
        run_id: str,
        controller_id: str,
        now: datetime,
    ) -> None:
        key = tuple_(artifact_claims.c.artifact, artifact_claims.c.site)
        held = conn.execute(
            select(artifact_claims, controllers.c.lease_expires, db_now(conn).label("now"))
            .select_from(
                artifact_claims.outerjoin(
                    controllers, controllers.c.id == artifact_claims.c.controller_id
                )
            )
            .where(key.in_(wanted))
        ).mappings()
        stale = []
        for row in held:
            alive = row["lease_expires"] is not None and row["lease_expires"] > row["now"]
            if alive and row["run_id"] != run_id:
                since = row["claimed_at"].isoformat(timespec="seconds")
                raise ArtifactBusy(row["artifact"], row["site"], row["run_id"], since)
            stale.append((row["artifact"], row["site"]))
        if stale:
            conn.execute(delete(artifact_claims).where(key.in_(stale)))
        # A rival inserting the same claim meanwhile makes this fail (StoreConflict).
        conn.execute(
            insert(artifact_claims),
            [
                {"artifact": a, "site": s, "run_id": run_id, "controller_id": controller_id,
                 "claimed_at": now}
                for a, s in wanted
            ],
        )  # fmt: skip

    def record_artifact_results(self, run_id: str, results: Sequence[ArtifactResult]) -> None:
        """Each result into the run's results and the matrix, in one transaction."""
        if not results:
            return
        now = self._clock()
        with self._write() as conn:
            conn.execute(
                insert(artifact_results),
                [
                    {"run_id": run_id, "artifact": r.artifact, "site": r.site, "host": r.host,
                     "result": r.result, "version": r.version, "reason": r.reason, "at": now}
                    for r in results
                ],
            )  # fmt: skip
            for r in results:
                if r.result not in RESULTS:
                    raise ValueError(f"unknown artifact result {r.result!r}")
                self._set_cell(conn, run_id, r, now)

    @staticmethod
    def _set_cell(conn: Connection, run_id: str, r: ArtifactResult, now: datetime) -> None:
        where = and_(
            artifact_cells.c.artifact == r.artifact,
            artifact_cells.c.site == r.site,
            artifact_cells.c.host == r.host,
        )
        values: dict[str, object] = {
            "status": r.result, "version": r.version, "reason": r.reason, "at": now,
            "run_id": run_id,
        }  # fmt: skip
        if r.result != "failed":
            values["deployed_version"] = r.version  # a failure leaves what the host holds
        if not conn.execute(update(artifact_cells).where(where).values(values)).rowcount:
            values.setdefault("deployed_version", None)
            conn.execute(
                insert(artifact_cells).values(
                    artifact=r.artifact, site=r.site, host=r.host, **values
                )
            )

    def finish_artifact_run(
        self, run_id: str, *, actor: str, status: str, summary: JsonMapping
    ) -> None:
        """Mark the run finished and release its claims."""
        with self._write() as conn:
            conn.execute(
                update(artifact_runs)
                .where(artifact_runs.c.id == run_id)
                .values(status=status, finished_at=self._clock(), summary=dict(summary))
            )
            conn.execute(delete(artifact_claims).where(artifact_claims.c.run_id == run_id))
            self._audit(conn, actor, "artifacts.finish", f"artifact-run:{run_id}", status,
                        dict(summary))  # fmt: skip

    def artifact_cells(
        self, *, sites: Sequence[str] | None = None, artifacts: Sequence[str] | None = None
    ) -> list[ArtifactCell]:
        """The matrix, ordered by artifact, site and host (only these sites or artifacts)."""
        query = select(artifact_cells)
        if sites is not None:
            query = query.where(artifact_cells.c.site.in_(list(sites)))
        if artifacts is not None:
            query = query.where(artifact_cells.c.artifact.in_(list(artifacts)))
        query = query.order_by(artifact_cells.c.artifact, artifact_cells.c.site,
                               artifact_cells.c.host)  # fmt: skip
        return self._all(query, lambda row: ArtifactCell(**dict(row)))

    def artifact_run(self, run_id: str) -> ArtifactRun | None:
        """A run with every host result it recorded, in the order recorded."""
        with self._read() as conn:
            row = (
                conn.execute(select(artifact_runs).where(artifact_runs.c.id == run_id))
                .mappings()
                .first()
            )
            if row is None:
                return None
            found = conn.execute(
                select(artifact_results)
                .where(artifact_results.c.run_id == run_id)
                .order_by(artifact_results.c.id)
            ).mappings()
            results = tuple(
                ArtifactResult(r["artifact"], r["site"], r["host"], r["result"], r["version"],
                               r["reason"])
                for r in found
            )  # fmt: skip
        return ArtifactRun(
            row["id"], row["actor"], row["request"], row["status"], row["started_at"],
            row["finished_at"], results,
        )  # fmt: skip


__all__ = ["ArtifactCell", "ArtifactResult", "ArtifactRun", "Artifacts"]
