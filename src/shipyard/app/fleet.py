"""How the fleet stands, in numbers: instances by site and status, and the stale ones (what the
config derives differs from what was deployed). What a metrics scrape asks for, read from the
store's fast status reads (no host is contacted, no stored config is loaded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shipyard.app.queries import NEVER_DEPLOYED
from shipyard.app.session import Session
from shipyard.app.statusrows import stored_instances


@dataclass(frozen=True)
class FleetCounts:
    """Instances per (site, status), and stale instances per site."""

    by_status: dict[tuple[str, str], int] = field(default_factory=dict)
    stale: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "instances": [
                {"site": site, "status": status, "count": n}
                for (site, status), n in sorted(self.by_status.items())
            ],
            "stale": dict(sorted(self.stale.items())),
        }


def fleet_counts(session: Session) -> FleetCounts:
    """Every configured instance counted by site and status (`never deployed` when the store
    has no record of it); stale when its deployed revision is not the one the config derives."""
    chosen = session.flatten(empty_ok=True).instances.values()
    with session.status_reads() as reads:
        stored = stored_instances(reads)
    by_status: dict[tuple[str, str], int] = {}
    stale: dict[str, int] = {}
    for instance in chosen:
        found = stored.get(instance.name)
        key = (instance.site, found.status if found else NEVER_DEPLOYED)
        by_status[key] = by_status.get(key, 0) + 1
        if found is None or found.deployed_revision != instance.revision:
            stale[instance.site] = stale.get(instance.site, 0) + 1
    return FleetCounts(by_status, stale)
