"""What ran: rollouts (newest first, a page at a time) and one rollout with its deployments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shipyard.app.logs import events
from shipyard.app.rollouts import OutcomeView
from shipyard.app.session import Session
from shipyard.errors import ConcurrentDeployment, RecordNotFound
from shipyard.events import Phase


@dataclass(frozen=True)
class DeploymentView:
    """One deployment of a rollout (error masked)."""

    id: str
    instance: str
    kind: str
    revision: str
    status: str
    actor: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "instance": self.instance,
            "kind": self.kind,
            "revision": self.revision,
            "status": self.status,
            "actor": self.actor,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "error": self.error,
        }


def deployment(session: Session, deployment_id: str) -> DeploymentView:
    """One deployment; RecordNotFound when there is none."""
    found = session.store.deployment(deployment_id)
    if found is None:
        raise RecordNotFound("deployment", deployment_id)
    return _deployment_view(session, found)


@dataclass(frozen=True)
class InstanceHistory:
    """One instance's deployments, newest first, and the revisions a rollback can go back to
    (successful ones other than the live one, newest first)."""

    instance: str
    deployments: tuple[DeploymentView, ...]
    kept: tuple[str, ...]
    live_revision: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "deployments": [d.to_json() for d in self.deployments],
            "kept": list(self.kept),
            "live_revision": self.live_revision,
        }


def instance_history(session: Session, name: str, *, limit: int = 50) -> InstanceHistory:
    """The newest `limit` deployments of instance `name` and the revisions kept to roll back
    to (as `rollouts.rollback_target` chooses among them)."""
    store = session.store
    live = store.instance_state(name)
    live_revision = live.deployed_revision if live is not None else None
    found = store.deployments(instance=name)
    kept: list[str] = []
    for d in found:
        if d.status.value == "success" and d.revision != live_revision and d.revision not in kept:
            kept.append(d.revision)
    shown = tuple(_deployment_view(session, d) for d in found[:limit])
    return InstanceHistory(name, shown, tuple(kept), live_revision)


@dataclass(frozen=True)
class RolloutView:
    """A rollout as the store records it; `deployments` only when one rollout is asked for."""

    id: str
    actor: str
    request: str
    strategy: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    summary: dict[str, Any]
    config_version: int | None = None
    deployments: tuple[DeploymentView, ...] = ()
    outcomes: tuple[OutcomeView, ...] = ()  # like deployments: of one rollout asked for
    cancelled: str | None = None  # the reason, when it was cancelled

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "actor": self.actor,
            "request": self.request,
            "strategy": self.strategy,
            "status": self.status,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "summary": self.summary,
            "config_version": self.config_version,
            "deployments": [d.to_json() for d in self.deployments],
            "outcomes": [o.to_json() for o in self.outcomes],
            "cancelled": self.cancelled,
        }


@dataclass(frozen=True)
class RolloutPage:
    rollouts: tuple[RolloutView, ...]
    next_before: str | None  # pass as `before` for the next (older) page

    def to_json(self) -> dict[str, Any]:
        return {"rollouts": [r.to_json() for r in self.rollouts], "next_before": self.next_before}


def refuse_held(session: Session, names: Sequence[str]) -> None:
    """Raise ConcurrentDeployment naming the holder when one of `names` is being deployed now
    (by this server, a CLI or another server). A check before starting, for a clear answer;
    the store still decides when deployments begin (a rival starting meanwhile is rejected)."""
    wanted = set(names)
    for held in session.store.active_deployments():
        if held.instance in wanted:
            raise ConcurrentDeployment(
                held.instance, held.id, held.actor, held.started_at.isoformat()
            )


def rollouts(session: Session, *, limit: int = 50, before: str | None = None) -> RolloutPage:
    """The newest rollouts first; `before` (a rollout id) pages to older ones."""
    found = session.store.rollouts(limit=limit + 1, before=before)
    page = [_view(session, r) for r in found[:limit]]
    more = len(found) > limit
    return RolloutPage(tuple(page), page[-1].id if more and page else None)


def rollout(session: Session, rollout_id: str) -> RolloutView:
    """One rollout with each of its deployments; RecordNotFound when there is none."""
    store = session.store
    found = store.rollout(rollout_id)
    if found is None:
        raise RecordNotFound("rollout", rollout_id)
    deployments = tuple(
        _deployment_view(session, d)
        for d in reversed(store.deployments(rollout_id=rollout_id, limit=100_000))
    )
    view = _view(session, found)
    cancelled = view.summary.get("cancelled")
    return RolloutView(
        **{
            **view.__dict__,
            "deployments": deployments,
            "outcomes": _outcomes(session, rollout_id, deployments),
            "cancelled": cancelled if isinstance(cancelled, str) else None,
        }
    )


def rollout_sites(session: Session, found: RolloutView) -> set[str]:
    """The sites a rollout's instances lie in (as the project places them; an instance the
    project no longer has, as the store last knew it)."""
    names = {d.instance for d in found.deployments} | {o.instance for o in found.outcomes}
    placed = session.flatten(empty_ok=True).instances
    sites = {placed[n].site for n in names if n in placed}
    for name in names - placed.keys():
        state = session.store.instance_state(name)
        sites.add(state.site if state is not None else "?")
    return sites


def _outcomes(
    session: Session, rollout_id: str, deployments: tuple[DeploymentView, ...]
) -> tuple[OutcomeView, ...]:
    """What happened to each instance, as the rollout's `finished` events say (result and
    reason, in the order they finished), with the revision and seconds of its deployment
    (an instance left unchanged has no deployment: no revision or seconds are known)."""
    by_id = {d.id: d for d in deployments}
    out: list[OutcomeView] = []
    for event in events(session, rollout_id=rollout_id, phase=Phase.FINISHED):
        if event.phase is not Phase.FINISHED or event.instance is None or event.result is None:
            continue
        found = by_id.get(event.deployment_id or "")
        seconds = 0.0
        if found is not None and found.finished_at is not None:
            seconds = max(0.0, (found.finished_at - found.started_at).total_seconds())
        out.append(
            OutcomeView(
                event.instance,
                event.result,
                found.revision if found is not None else "",
                event.detail,
                event.deployment_id,
                round(seconds, 3),
            )
        )
    return tuple(out)


def _view(session: Session, found: Any) -> RolloutView:
    masker = session.masker()
    summary = masker.json(found.summary)
    return RolloutView(
        id=found.id,
        actor=found.actor,
        request=masker.text(found.request),
        strategy=found.strategy,
        status=found.status.value,
        started_at=found.started_at,
        finished_at=found.finished_at,
        summary=summary if isinstance(summary, dict) else {},
        config_version=getattr(found, "config_version", None),
    )


def _deployment_view(session: Session, found: Any) -> DeploymentView:
    masker = session.masker()
    return DeploymentView(
        id=found.id,
        instance=found.instance,
        kind=found.kind.value,
        revision=found.revision,
        status=found.status.value,
        actor=found.actor,
        started_at=found.started_at,
        finished_at=found.finished_at,
        error=masker.text(found.error) if found.error else None,
    )
