"""The values health and drift answer with: each site's, host's and instance's health, and a
whole report, each with the JSON the API sends (and the CLI in client mode reads back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from shipyard.deploy.drift import Drift, DriftKind
from shipyard.plan.health import SiteCounts

if TYPE_CHECKING:
    from shipyard.store.health import HostHealthRow, InstanceHealthRow


@dataclass(frozen=True)
class HostHealth:
    host: str
    site: str
    state: str
    since: datetime
    last_ok_at: datetime | None
    checked_at: datetime
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return _json(asdict(self))

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> HostHealth:
        return cls(**_times(value, "since", "last_ok_at", "checked_at"))


@dataclass(frozen=True)
class InstanceHealth:
    instance: str
    site: str
    host: str
    health: str
    since: datetime
    detail: str
    checked_at: datetime
    drift: tuple[Drift, ...] = ()

    def to_json(self) -> dict[str, Any]:
        shown = _json(asdict(self))
        shown["drift"] = [d.to_json() for d in self.drift]
        return shown

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> InstanceHealth:
        fields = _times(value, "since", "checked_at")
        fields["drift"] = tuple(Drift.from_json(d) for d in value.get("drift", ()))
        return cls(**fields)


@dataclass(frozen=True)
class SiteHealth:
    site: str
    state: str
    counts: SiteCounts

    def to_json(self) -> dict[str, Any]:
        return {"site": self.site, "state": self.state, **asdict(self.counts)}

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> SiteHealth:
        counts = {k: int(value[k]) for k in SiteCounts.__dataclass_fields__}
        return cls(str(value["site"]), str(value["state"]), SiteCounts(**counts))


@dataclass(frozen=True)
class HealthReport:
    sites: tuple[SiteHealth, ...]
    hosts: tuple[HostHealth, ...]
    instances: tuple[InstanceHealth, ...]
    unknown: tuple[Drift, ...] = ()  # services on hosts the store does not know (from a check)

    @property
    def drift(self) -> list[Drift]:
        return [d for i in self.instances for d in i.drift] + list(self.unknown)

    def to_json(self) -> dict[str, Any]:
        return {
            "sites": [s.to_json() for s in self.sites],
            "hosts": [h.to_json() for h in self.hosts],
            "instances": [i.to_json() for i in self.instances],
            "unknown": [d.to_json() for d in self.unknown],
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> HealthReport:
        return cls(
            tuple(SiteHealth.from_json(s) for s in value["sites"]),
            tuple(HostHealth.from_json(h) for h in value["hosts"]),
            tuple(InstanceHealth.from_json(i) for i in value["instances"]),
            tuple(Drift.from_json(d) for d in value.get("unknown", ())),
        )


def host_of(row: HostHealthRow) -> HostHealth:
    return HostHealth(
        row.host, row.site, row.state, row.since, row.last_ok_at, row.checked_at, row.error
    )


def instance_of(row: InstanceHealthRow) -> InstanceHealth:
    drift = tuple(
        Drift(str(d.get("instance", row.instance)), DriftKind(d["kind"]), str(d["detail"]))
        for d in row.drift
    )
    return InstanceHealth(
        row.instance, row.site, row.host, row.health, row.since, row.detail, row.checked_at, drift
    )


def _json(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in value.items()}


def _times(value: dict[str, Any], *names: str) -> dict[str, Any]:
    out = dict(value)
    for name in names:
        if out.get(name) is not None:
            out[name] = datetime.fromisoformat(out[name])
    return out
