"""Use cases that report: status (with blue/green slots), diff, audit and its verification."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.app.selectors import select_instances, select_placed
from shipyard.app.session import Session
from shipyard.app.statusrows import LastDeployment, StoredInstance, stored_instances
from shipyard.masking import Masker

if TYPE_CHECKING:
    from shipyard.config.flatten import Instance
    from shipyard.plan.diff import DiffEntry

NEVER_DEPLOYED = "never deployed"
BUSY = frozenset({"pending", "in_progress"})


@dataclass(frozen=True)
class Slots:
    """Blue/green slots as the host reports them, or why they could not be read."""

    live: str | None = None
    draining: str | None = None
    blue: str | None = None
    green: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"error": self.error}
        return {
            "live": self.live,
            "draining": self.draining,
            "blue": self.blue,
            "green": self.green,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Slots:
        if data.get("error") is not None:
            return cls(error=str(data["error"]))
        return cls(data.get("live"), data.get("draining"), data.get("blue"), data.get("green"))


@dataclass(frozen=True)
class StatusRow:
    """One instance: where it runs, its status, deployed against derived revision, last try."""

    instance: str
    site: str
    host: str
    status: str
    deployed_revision: str | None
    revision: str
    last: LastDeployment | None
    slots: Slots | None = None
    service: str = ""

    @property
    def stale(self) -> bool:
        """Its config derives another revision than it runs; never while disabled (a deploy
        leaves it alone) or orphaned (no config derives it any more)."""
        if self.status in ("disabled", "orphaned"):
            return False
        return self.deployed_revision != self.revision

    @property
    def attention(self) -> bool:
        """Failed, orphaned, stale or in progress: what a person reading a summary wants to
        see."""
        return self.status in ("failed", "orphaned") or self.status in BUSY or self.stale

    def to_json(self) -> dict[str, Any]:
        last = self.last
        return {
            "slots": None if self.slots is None else self.slots.to_json(),
            "instance": self.instance,
            "service": self.service,
            "site": self.site,
            "host": self.host,
            "status": self.status,
            "deployed_revision": self.deployed_revision,
            "revision": self.revision,
            "stale": self.stale,
            "attention": self.attention,
            "last": None
            if last is None
            else {
                "id": last.id,
                "kind": last.kind,
                "actor": last.actor,
                "started": _when(last.started_at),
                "finished": _when(last.finished_at) if last.finished_at else None,
                "status": last.status,
                "error": last.error,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> StatusRow:
        """The row `to_json` gave (as a server sends it)."""
        last = data.get("last")
        slots = data.get("slots")
        return cls(
            instance=data["instance"],
            site=data["site"],
            host=data["host"],
            status=data["status"],
            deployed_revision=data.get("deployed_revision"),
            revision=data["revision"],
            last=None
            if last is None
            else LastDeployment(
                id=last["id"],
                kind=last["kind"],
                actor=last["actor"],
                status=last["status"],
                started_at=datetime.fromisoformat(last["started"]),
                finished_at=datetime.fromisoformat(last["finished"]) if last["finished"] else None,
                error=last.get("error"),
            ),
            slots=None if slots is None else Slots.from_json(slots),
            service=data.get("service", ""),
        )


@dataclass(frozen=True)
class StatusReport:
    """Every chosen instance's row, and the counts per site and status."""

    rows: tuple[StatusRow, ...]
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # site -> status -> n
    stale: dict[str, int] = field(default_factory=dict)  # site -> stale instances

    @property
    def attention(self) -> list[StatusRow]:
        return [row for row in self.rows if row.attention]

    def to_json(self) -> list[dict[str, Any]]:
        return [row.to_json() for row in self.rows]

    @classmethod
    def of_rows(cls, rows: Sequence[StatusRow]) -> StatusReport:
        """The report of these rows, with their counts per site and status."""
        counts: dict[str, dict[str, int]] = {}
        stale: dict[str, int] = {}
        for row in rows:
            per_site = counts.setdefault(row.site, {})
            per_site[row.status] = per_site.get(row.status, 0) + 1
            if row.stale:
                stale[row.site] = stale.get(row.site, 0) + 1
        return cls(tuple(rows), counts, stale)

    @classmethod
    def from_json(cls, rows: Sequence[dict[str, Any]]) -> StatusReport:
        return cls.of_rows([StatusRow.from_json(row) for row in rows])


async def status(session: Session, *, site: str | None = None, slots: bool = True) -> StatusReport:
    """Per instance: site, host, status, deployed revision, stale or not, last deployment; with
    `slots`, the slots of blue/green instances as their hosts report them (contacts hosts)."""
    flat = session.index()
    chosen = select_placed(flat, site=site)
    with session.status_reads() as reads:
        stored = stored_instances(reads, site=site)
    slotted = [i.name for i in chosen if i.uses_slots] if slots else []
    if slotted:
        derived = session.flatten().instances
        found_slots = await slot_states(session, [derived[name] for name in slotted])
    else:
        found_slots = {}
    masker = session.masker()
    rows: list[StatusRow] = []
    for instance in chosen:
        found = stored.get(instance.name)
        row = StatusRow(
            instance=instance.name,
            site=instance.site,
            host=instance.host,
            status=_shown_status(found) if found else NEVER_DEPLOYED,
            deployed_revision=found.deployed_revision if found else None,
            revision=instance.revision,
            last=_masked_last(found, masker),
            slots=found_slots.get(instance.name),
            service=instance.service,
        )
        rows.append(row)
    # What the store holds on a host and no config derives any more: until it is deleted.
    for name, found in stored.items():
        if name not in flat.instances and found.lifecycle != "deleted":
            service = name.partition("@")[0]
            rows.append(
                StatusRow(
                    instance=name, site=found.site, host=found.host, status="orphaned",
                    deployed_revision=found.deployed_revision, revision="",
                    last=_masked_last(found, masker), service=service,
                )
            )  # fmt: skip
    return StatusReport.of_rows(rows)


def _shown_status(found: StoredInstance) -> str:
    """The status column: the lifecycle when it is not active, else the deployment status."""
    return found.status if found.lifecycle == "active" else found.lifecycle


def _masked_last(found: StoredInstance | None, masker: Masker) -> LastDeployment | None:
    last = found.last if found else None
    if last is not None and last.error:
        last = LastDeployment(**{**asdict(last), "error": masker.text(last.error)})
    return last


def last_change(session: Session) -> int:
    """The id of the newest stored event: every deployment change writes one, so a view built
    at one id is current while the id stays the same (one cheap read)."""
    return session.store.last_event_id()


async def slot_states(session: Session, instances: Sequence[Instance]) -> dict[str, Slots]:
    """Blue/green slots as the hosts report them: live, draining, and each slot's revision."""
    from shipyard.config.topology import all_hosts
    from shipyard.deploy.bluegreen import BlueGreen
    from shipyard.deploy.instance import Release
    from shipyard.errors import ShipyardError

    loaded = session.load()
    masker = session.masker()
    hosts = all_hosts(loaded.project)
    out: dict[str, Slots] = {}
    async with session.executor_pool() as pool:

        async def one(instance: Instance) -> None:
            ref = hosts[instance.host]
            target = Release(instance, instance.config, ref, loaded.home)
            try:
                found = await BlueGreen(pool.executor(ref.name, ref.host), target).state()
            except ShipyardError as trouble:
                out[instance.name] = Slots(error=masker.text(str(trouble)))
                return
            out[instance.name] = Slots(found.live, found.draining, found.blue, found.green)

        await asyncio.gather(*(one(i) for i in instances))
    return out


@dataclass(frozen=True)
class InstanceDiff:
    """The deployed snapshot of one instance against its template-derived config."""

    instance: str
    entries: tuple[DiffEntry, ...]

    def to_json(self) -> list[dict[str, Any]]:
        return [e.as_json() for e in self.entries]

    @classmethod
    def from_json(cls, instance: str, entries: Sequence[dict[str, Any]]) -> InstanceDiff:
        from shipyard.plan.diff import DiffEntry

        return cls(
            instance,
            tuple(
                DiffEntry(e["kind"], e["path"], e.get("old"), e.get("new"), e.get("unified"))
                for e in entries
            ),
        )


def diff(
    session: Session, names: Sequence[str] | None = None, *, site: str | None = None
) -> list[InstanceDiff]:
    """Deployed snapshot against derived config per chosen instance (secrets masked)."""
    from shipyard.plan.diff import diff_configs

    flat = session.flatten()
    chosen = select_instances(flat, names, site=site)
    states = {s.name: s for s in session.store.instance_states()}
    masker = session.masker()
    out: list[InstanceDiff] = []
    for instance in chosen:
        found = states.get(instance.name)
        deployed = found.deployed if found else None
        entries = diff_configs(
            deployed.config if deployed else None,
            instance.config,
            old_secrets=deployed.secrets if deployed else None,
            new_secrets=instance.secrets,
        )
        out.append(InstanceDiff(instance.name, tuple(_masked_entry(e, masker) for e in entries)))
    return out


def _masked_entry(entry: DiffEntry, masker: Masker) -> DiffEntry:
    from dataclasses import replace

    return replace(
        entry,
        old=masker.json(entry.old),
        new=masker.json(entry.new),
        unified=None if entry.unified is None else masker.text(entry.unified),
    )


@dataclass(frozen=True)
class AuditLine:
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    result: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditLine:
        at = data["at"]
        return cls(
            id=int(data["id"]),
            at=at if isinstance(at, datetime) else datetime.fromisoformat(at),
            actor=data["actor"],
            action=data["action"],
            target=data["target"],
            result=data["result"],
            detail=dict(data["detail"]),
        )


@dataclass(frozen=True)
class AuditPage:
    """Audit entries newest first; `more` when older entries may follow (page with `before`)."""

    entries: tuple[AuditLine, ...]
    more: bool

    @property
    def oldest_id(self) -> int | None:
        return self.entries[-1].id if self.entries else None

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries]

    @classmethod
    def from_json(cls, entries: Sequence[dict[str, Any]], *, more: bool) -> AuditPage:
        return cls(tuple(AuditLine.from_json(e) for e in entries), more)


def audit(
    session: Session,
    *,
    instance: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 100,
    before: int | None = None,
) -> AuditPage:
    """The audit log, newest first, of one target (`instance`), actor or action, between
    `since` and `until`; a naive time is UTC."""
    since, until = (_utc(t) for t in (since, until))
    masker = session.masker()
    found = session.store.audit(
        instance=instance,
        since=since,
        until=until,
        actor=actor,
        action=action,
        limit=limit,
        before=before,
    )
    lines = []
    for e in sorted(found, key=lambda e: e.id, reverse=True):
        detail = masker.json(dict(e.detail))
        assert isinstance(detail, dict)
        actor, action, target, result = (
            masker.text(t) for t in (e.actor, e.action, e.target, e.result)
        )
        lines.append(AuditLine(e.id, e.at, actor, action, target, result, detail))
    return AuditPage(tuple(lines), more=len(lines) == limit)


@dataclass(frozen=True)
class AuditVerdict:
    """What checking the audit log's hash chain found."""

    whole: bool
    count: int
    head: str
    broken_row: int | None = None
    broken_reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        broken = (
            None
            if self.broken_row is None
            else {"row": self.broken_row, "reason": self.broken_reason}
        )
        return {"whole": self.whole, "count": self.count, "head": self.head, "broken": broken}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AuditVerdict:
        broken = data.get("broken") or {}
        return cls(
            bool(data["whole"]),
            int(data["count"]),
            str(data["head"]),
            broken.get("row"),
            broken.get("reason"),
        )


def audit_verify(session: Session) -> AuditVerdict:
    """Check the chain. Only reads: no recovery here, so verifying never writes to what it
    checks."""
    with session.read_only_store() as store:
        report = store.verify_audit()
    broken = report.broken
    if broken is None:
        return AuditVerdict(True, report.count, report.head)
    return AuditVerdict(False, report.count, report.head, broken.row_id, broken.reason)


def _utc(at: datetime | None) -> datetime | None:
    return at.replace(tzinfo=UTC) if at is not None and at.tzinfo is None else at


def _when(at: datetime) -> str:
    return at.isoformat(timespec="seconds")
