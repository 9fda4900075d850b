"""What the store knows of each instance, in the shape status and plan need.

FALLBACK (helper "speed" adds Store.status_rows and Store.deployed_revisions, which read no
stored configs): until they land these compute the same from `store.instance_states()`. The
integrator swaps the two bodies for the store's calls; nothing else changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.store import Store


@dataclass(frozen=True)
class LastDeployment:
    """An instance's last deployment, as status shows it."""

    id: str
    kind: str
    actor: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    error: str | None


@dataclass(frozen=True)
class StoredInstance:
    """One instance as the store knows it: status, deployed revision, last deployment."""

    name: str
    site: str
    host: str
    status: str
    deployed_revision: str | None
    last: LastDeployment | None


def stored_instances(store: Store, *, site: str | None = None) -> dict[str, StoredInstance]:
    """By instance name. FALLBACK: with Store.status_rows (helper "speed"), the body becomes

    return {
        r.name: StoredInstance(
            r.name, r.site, r.host, r.status.value, r.deployed_revision,
            None if r.last_deployment_id is None or r.last_status is None else
            LastDeployment(
                r.last_deployment_id, r.last_kind or "deploy", r.last_actor or "",
                r.last_status.value, r.last_started_at, r.last_finished_at, r.last_error,
            ),
        )
        for r in store.status_rows(site=site)
    }
    """
    out: dict[str, StoredInstance] = {}
    for found in store.instance_states(site=site):
        last = found.last_deployment
        out[found.name] = StoredInstance(
            name=found.name,
            site=found.site,
            host=found.host,
            status=found.status.value,
            deployed_revision=found.deployed_revision,
            last=None
            if last is None
            else LastDeployment(
                id=last.id,
                kind=last.kind.value,
                actor=last.actor,
                status=last.status.value,
                started_at=last.started_at,
                finished_at=last.finished_at,
                error=last.error,
            ),
        )
    return out


def deployed_revisions(store: Store) -> dict[str, str]:
    """Deployed revision per instance. FALLBACK: becomes `store.deployed_revisions()`."""
    return {s.name: s.deployed_revision for s in store.instance_states() if s.deployed_revision}
