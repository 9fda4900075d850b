"""System-wide artifacts as use cases: plan, deploy, retry and the status matrix.

`deploy_artifacts` pushes the chosen artifacts (all by default) to every host of the chosen
sites; `retry_artifacts` pushes only where the last attempt failed. Both run as one recorded
run (store.artifacts): the run claims each (artifact, site) it pushes to, under this
controller's lease, so two runs never push the same artifact to the same site at once.
`scope` sees the sites a request reaches first (a server refuses sites outside the caller's).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.app.session import Session
from shipyard.config.topology import suggestion
from shipyard.errors import UsageError
from shipyard.plan.artifacts import (
    HostTarget,
    MatrixEntry,
    Recorded,
    Wanted,
    matrix,
    plan_hosts,
)

if TYPE_CHECKING:
    from shipyard.config.flatten import Flattened

Scope = Callable[[set[str]], None]


@dataclass(frozen=True)
class HostResultView:
    """What a run did with one artifact on one host (reason masked by the front end)."""

    artifact: str
    site: str
    host: str
    result: str  # success, failed, unchanged, planned
    version: str
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "site": self.site, "host": self.host,
                "result": self.result, "version": self.version, "reason": self.reason}  # fmt: skip

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> HostResultView:
        return cls(str(value["artifact"]), str(value["site"]), str(value["host"]),
                   str(value["result"]), str(value.get("version") or ""),
                   str(value.get("reason") or ""))  # fmt: skip


@dataclass(frozen=True)
class ArtifactReport:
    """A run of `artifacts deploy` or `retry` (or its dry run): each host's result."""

    run_id: str | None
    results: tuple[HostResultView, ...]
    dry_run: bool = False

    @property
    def failed(self) -> list[HostResultView]:
        return [r for r in self.results if r.result == "failed"]

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> dict[str, Any]:
        return {"run": self.run_id, "ok": self.ok, "dry_run": self.dry_run,
                "results": [r.to_json() for r in self.results]}  # fmt: skip

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ArtifactReport:
        results = tuple(HostResultView.from_json(r) for r in value.get("results", []))
        return cls(value.get("run"), results, bool(value.get("dry_run")))


@dataclass(frozen=True)
class MatrixCellView:
    """One artifact at one site: its state, its hosts' states and why the failed ones failed."""

    artifact: str
    site: str
    state: str
    version: str
    hosts: dict[str, str] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for state in self.hosts.values():
            out[state] = out.get(state, 0) + 1
        return dict(sorted(out.items()))

    def to_json(self) -> dict[str, Any]:
        return {"artifact": self.artifact, "site": self.site, "state": self.state,
                "version": self.version, "hosts": self.hosts, "counts": self.counts(),
                "reasons": self.reasons}  # fmt: skip

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> MatrixCellView:
        return cls(str(value["artifact"]), str(value["site"]), str(value["state"]),
                   str(value.get("version") or ""), dict(value.get("hosts") or {}),
                   dict(value.get("reasons") or {}))  # fmt: skip

    @classmethod
    def of(cls, entry: MatrixEntry) -> MatrixCellView:
        hosts = {h: s.value for h, s in entry.hosts.items()}
        return cls(entry.artifact, entry.site, entry.state.value, entry.version, hosts,
                   dict(entry.reasons))  # fmt: skip


@dataclass(frozen=True)
class ArtifactMatrix:
    """The status matrix: artifacts x sites."""

    cells: tuple[MatrixCellView, ...]

    @property
    def failed(self) -> bool:
        return any(c.state == "failed" for c in self.cells)

    def to_json(self) -> dict[str, Any]:
        return {"failed": self.failed, "cells": [c.to_json() for c in self.cells]}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ArtifactMatrix:
        return cls(tuple(MatrixCellView.from_json(c) for c in value.get("cells", [])))


def _flat(session: Session) -> Flattened:
    return session.flatten(empty_ok=True)


def _choose(
    flat: Flattened, names: Sequence[str] | None, site: str | None, scope: Scope | None
) -> tuple[Wanted, dict[str, list[str]]]:
    """The versions wanted of the named artifacts (all) at the site (all), and each site's
    hosts; unknown names are refused with the closest known ones."""
    project = flat.loaded.project
    known = flat.artifacts
    for name in names or ():
        if name not in project.artifacts:
            raise UsageError(f'unknown artifact "{name}"{suggestion(name, project.artifacts)}')
    if site is not None and site not in project.sites:
        raise UsageError(f'unknown site "{site}"{suggestion(site, project.sites)}')
    chosen = list(dict.fromkeys(names)) if names else list(known)
    wanted = {
        name: {s: a.version for s, a in known[name].items() if site is None or s == site}
        for name in chosen
    }
    sites = {s for versions in wanted.values() for s in versions}
    if scope is not None:
        scope(sites | ({site} if site else set()))
    hosts = {s: list(project.sites[s].hosts) for s in sites}
    return wanted, hosts


def _recorded(session: Session, wanted: Wanted) -> dict[tuple[str, str, str], Recorded]:
    cells = session.store.artifact_cells(artifacts=list(wanted))
    return {
        (c.artifact, c.site, c.host): Recorded(c.status, c.deployed_version, c.reason)
        for c in cells
    }


def plan_artifacts(
    session: Session,
    names: Sequence[str] | None = None,
    *,
    site: str | None = None,
    only_failed: bool = False,
    scope: Scope | None = None,
) -> list[HostTarget]:
    """Each (artifact, site, host) a deploy (or retry) would reach, changed or not."""
    flat = _flat(session)
    wanted, hosts = _choose(flat, names, site, scope)
    return plan_hosts(wanted, hosts, _recorded(session, wanted), only_failed=only_failed)


def artifact_status(
    session: Session, *, site: str | None = None, scope: Scope | None = None
) -> ArtifactMatrix:
    """The matrix of every artifact at every site it goes to (one site with `site`)."""
    flat = _flat(session)
    wanted, hosts = _choose(flat, None, site, scope)
    entries = matrix(wanted, hosts, _recorded(session, wanted))
    return ArtifactMatrix(tuple(MatrixCellView.of(e) for e in entries))


async def deploy_artifacts(
    session: Session,
    names: Sequence[str] | None = None,
    *,
    site: str | None = None,
    dry_run: bool = False,
    scope: Scope | None = None,
) -> ArtifactReport:
    """Push the chosen artifacts where they changed (checked with the host where not)."""
    request = " ".join(["artifacts deploy", *(names or []), *([f"--site {site}"] if site else [])])
    targets = plan_artifacts(session, names, site=site, scope=scope)
    return await _run(session, targets, request, dry_run)


async def retry_artifacts(
    session: Session,
    names: Sequence[str] | None = None,
    *,
    site: str | None = None,
    scope: Scope | None = None,
) -> ArtifactReport:
    """Push again only where the last attempt failed; every other host is left alone."""
    request = " ".join(["artifacts retry", *(names or []), *([f"--site {site}"] if site else [])])
    targets = plan_artifacts(session, names, site=site, only_failed=True, scope=scope)
    return await _run(session, targets, request, False)


async def _run(
    session: Session, targets: list[HostTarget], request: str, dry_run: bool
) -> ArtifactReport:
    if dry_run:
        planned = tuple(
            HostResultView(t.artifact, t.site, t.host, "changed" if t.changed else "unchanged",
                           t.version, t.why)
            for t in targets
        )  # fmt: skip
        return ArtifactReport(None, planned, dry_run=True)
    from shipyard.config.topology import all_hosts
    from shipyard.deploy.artifacts import Push, push_all
    from shipyard.deploy.lease import Lease
    from shipyard.events import EventBus

    flat = _flat(session)
    store = session.store
    refs = all_hosts(flat.loaded.project)
    pushes = [Push(t, flat.artifacts[t.artifact][t.site], refs[t.host]) for t in targets]
    run_id = str(uuid.uuid4())
    claims = sorted({(t.artifact, t.site) for t in targets})
    lease = Lease(store, session.controller, session.policy, lambda: ())
    async with lease.held():
        store.begin_artifact_run(run_id=run_id, actor=session.actor, request=request,
                                 controller_id=session.controller.id, claims=claims)  # fmt: skip
        status = "failed"
        results = []
        try:
            async with session.executor_pool() as pool:
                results = await push_all(
                    pushes, lambda ref: pool.executor(ref.name, ref.host),
                    lookup=flat.secrets.require,
                    limit=flat.loaded.project.ssh.max_in_flight,
                    events=EventBus(store.append_events),
                )  # fmt: skip
            store.record_artifact_results(run_id, results)
            status = "failed" if any(r.result == "failed" for r in results) else "success"
        finally:
            counts: dict[str, int] = {}
            for r in results:
                counts[r.result] = counts.get(r.result, 0) + 1
            store.finish_artifact_run(run_id, actor=session.actor, status=status,
                                      summary={"results": counts})  # fmt: skip
    views = tuple(
        HostResultView(r.artifact, r.site, r.host, r.result, r.version, r.reason) for r in results
    )
    return ArtifactReport(run_id, views)
