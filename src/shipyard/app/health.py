"""Health monitoring and drift: what the monitor saw of each site, host and instance.

`health` reads the store's view (what the server's monitor, or the last `check`, wrote);
`check` runs one round now over the chosen sites' hosts, stores it and publishes what changed;
`Watch` is the server's monitor, a round every `interval` seconds through one executor pool
that stays open between rounds. `drift` runs a deep round (every file's checksum verified) and
returns what differs; `accept` takes the files of an instance's live release as they are now
(their checksums written again), so a change made by hand on purpose is no longer drift.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from shipyard.app.health_values import (
    HealthReport,
    HostHealth,
    InstanceHealth,
    SiteHealth,
    host_of,
    instance_of,
)
from shipyard.app.session import Session
from shipyard.deploy.drift import Drift
from shipyard.errors import ShipyardError, UsageError
from shipyard.events import Event, EventBus
from shipyard.plan.health import (
    OFFLINE_AFTER,
    RECENT_FAILURES,
    SiteCounts,
    SiteState,
    site_state,
)

if TYPE_CHECKING:
    from shipyard.deploy.monitor import Monitor, RoundResult, WatchedHost
    from shipyard.executors.factory import ExecutorPool

log = logging.getLogger(__name__)

Sites = frozenset[str] | None  # the sites a caller may see (None: every site)
EventSink = Callable[[Event], None]


def health(
    session: Session,
    *,
    site: str | None = None,
    sites: Sites = None,
    now: datetime | None = None,
    unknown: Iterable[Drift] = (),
) -> HealthReport:
    """The store's view of health (of one site, of the sites a caller may see)."""
    from shipyard.store.journal import utc_now

    chosen = _chosen_sites(session, site, sites)
    store = session.store
    at = now or utc_now()
    hosts = [h for h in store.host_health() if h.site in chosen]
    found = [i for i in store.instance_health() if i.site in chosen]
    failures = store.failures_since(at - timedelta(seconds=RECENT_FAILURES))
    counts: dict[str, dict[str, int]] = {s: {} for s in sorted(chosen)}
    for h in hosts:
        key = f"hosts_{h.state}"
        counts[h.site][key] = counts[h.site].get(key, 0) + 1
    for i in found:
        if i.health == "failing":
            counts[i.site]["failing"] = counts[i.site].get("failing", 0) + 1
        if i.drift:
            counts[i.site]["drifted"] = counts[i.site].get("drifted", 0) + 1
    report_sites = []
    for name, n in counts.items():
        tally = SiteCounts(**n, recent_failures=failures.get(name, 0))
        report_sites.append(SiteHealth(name, site_state(tally).value, tally))
    return HealthReport(
        tuple(report_sites),
        tuple(host_of(h) for h in hosts),
        tuple(instance_of(i) for i in found),
        tuple(d for d in unknown if _site_of_unknown(session, d) in chosen),
    )


async def check(
    session: Session,
    *,
    site: str | None = None,
    sites: Sites = None,
    deep: bool = False,
    on_event: EventSink | None = None,
) -> HealthReport:
    """One round now over the chosen hosts (a deep one verifies every file's checksum): stored,
    what changed published as events (stored, and to `on_event`), and the report returned."""
    from shipyard.store.journal import utc_now

    chosen = _chosen_sites(session, site, sites)
    bus = _bus(session, on_event)
    pool = session.executor_pool()
    async with pool:
        watch = Watch(session, pool, bus.publish, offline_after=OFFLINE_AFTER)
        result = await watch.round(chosen, deep=deep)
    await bus.flush()
    return health(session, site=site, sites=sites, now=utc_now(), unknown=result.unknown)


async def drift(session: Session, *, site: str | None = None, sites: Sites = None) -> HealthReport:
    """A deep round over the chosen hosts: every difference between them and the store."""
    return await check(session, site=site, sites=sites, deep=True)


async def accept(session: Session, names: Iterable[str], *, sites: Sites = None) -> list[str]:
    """Take the files of each named instance's live release as they are now: their checksums
    are written again on the host (so a hand edit made on purpose stops being drift). Only
    files: a release switched or a program stopped by hand is fixed by deploying again.
    Returns the instances accepted; audited."""
    from shipyard.commands.inspect import sums_script
    from shipyard.commands.release import ReleaseLayout
    from shipyard.config.topology import all_hosts

    wanted = list(dict.fromkeys(names))
    if not wanted:
        raise UsageError("name the instances whose files to accept")
    store = session.store
    refs = all_hosts(session.flatten().loaded.project)
    chosen = []
    for name in wanted:
        record = store.instance_state(name)
        if record is None or record.deployed is None or record.lifecycle.value == "deleted":
            raise UsageError(f"cannot accept {name}: nothing of it is deployed")
        if sites is not None and record.site not in sites:
            raise UsageError(f"cannot accept {name}: site {record.site} is not yours")
        if record.host not in refs:
            raise UsageError(f"cannot accept {name}: its host {record.host} is not in the project")
        host_config = record.deployed.config.get("host")
        root = str(host_config["root"]) if isinstance(host_config, dict) else ""
        if not root:
            raise UsageError(f"cannot accept {name}: its deployed config names no deploy root")
        chosen.append((record, ReleaseLayout(root, record.service)))
    async with session.executor_pool() as pool:
        for record, layout in chosen:
            assert record.deployed is not None
            executor = pool.executor(record.host, refs[record.host].host)
            try:
                await executor.run(sums_script(layout, record.deployed.revision).named("accept"))
            except ShipyardError as error:
                raise UsageError(f"cannot accept {record.name}: {error}") from None
            store.append_audit(
                actor=session.actor, action="drift.accept", target=record.name, result="success",
                detail={"revision": record.deployed.revision},
            )  # fmt: skip
    return [record.name for record, _ in chosen]


def sites_of(session: Session, names: Iterable[str]) -> set[str]:
    """The sites of the named instances, as the config or (for an orphan) the store has them;
    a name neither knows has none (it is refused later, by name)."""
    flat = session.flatten()
    found = set()
    for name in names:
        instance = flat.instances.get(name)
        if instance is not None:
            found.add(instance.site)
        elif (record := session.store.instance_state(name)) is not None:
            found.add(record.site)
    return found


class Watch:
    """The monitor over a session's project: what to watch is read again at every round (the
    config may have been reloaded, instances deployed), from the store and the project."""

    def __init__(
        self,
        session: Session,
        pool: ExecutorPool,
        publish: EventSink,
        *,
        offline_after: float = OFFLINE_AFTER,
    ) -> None:
        from shipyard.deploy.monitor import Monitor
        from shipyard.store.journal import utc_now

        self.session = session
        self._pool = pool
        self.monitor: Monitor = Monitor(
            self._executor,
            publish,
            session.masker().text,
            offline_after=offline_after,
            started=utc_now(),
        )

    async def round(
        self, sites: Iterable[str] | None = None, *, deep: bool = False, wait: float | None = None
    ) -> RoundResult:
        """One round (see Monitor.round: `wait` bounds how long it waits for slow hosts)."""
        from shipyard.store.journal import utc_now

        session = self.session
        chosen = set(sites) if sites is not None else None
        hosts = await asyncio.to_thread(watched_hosts, session, chosen)
        store = session.store
        before_hosts = {h.host: h for h in await asyncio.to_thread(store.host_health)}
        before = {i.instance: i for i in await asyncio.to_thread(store.instance_health)}
        result = await self.monitor.round(
            hosts, before_hosts, before, utc_now, deep=deep, wait=wait
        )
        await asyncio.to_thread(store.save_health, result.hosts, result.instances)
        if chosen is None:  # what the project no longer has
            gone_hosts = set(before_hosts) - {h.host for h in result.hosts}
            gone = set(before) - {i.instance for i in result.instances}
            if gone_hosts or gone:
                await asyncio.to_thread(
                    store.forget_health, hosts=sorted(gone_hosts), found=sorted(gone)
                )
        return result

    def close(self) -> None:
        self.monitor.close()

    @classmethod
    @contextlib.asynccontextmanager
    async def opened(
        cls, session: Session, publish: EventSink, *, offline_after: float = OFFLINE_AFTER
    ) -> AsyncIterator[Watch]:
        """A monitor with an executor pool of its own, open until the block ends (the reads
        still in flight then are cancelled)."""
        async with session.executor_pool() as pool:
            watch = cls(session, pool, publish, offline_after=offline_after)
            try:
                yield watch
            finally:
                watch.close()

    def _executor(self, host: WatchedHost) -> Any:
        from shipyard.config.topology import all_hosts

        ref = all_hosts(self.session.flatten().loaded.project)[host.host]
        return self._pool.executor(ref.name, ref.host)


def watched_hosts(session: Session, sites: set[str] | None) -> list[WatchedHost]:
    """Every host of the chosen sites with the instances the monitor watches on it: each
    instance as deployed (its stored snapshot), or as the config has it when never deployed."""
    from shipyard.config.topology import all_hosts
    from shipyard.deploy.drift import Expected
    from shipyard.deploy.instance import Release
    from shipyard.deploy.monitor import Watched, WatchedHost

    flat = session.flatten()
    project = flat.loaded.project
    states = {s.name: s for s in session.store.instance_states()}
    known: dict[str, set[str]] = {}
    for s in states.values():
        if s.lifecycle.value != "deleted" and s.deployed is not None:
            known.setdefault(s.host, set()).add(s.service)
    by_host: dict[str, list[Watched]] = {}
    for instance in flat.instances.values():
        if sites is not None and instance.site not in sites:
            continue
        state = states.get(instance.name)
        deployed = state.deployed if state is not None else None
        lifecycle = state.lifecycle.value if state is not None else "active"
        live = instance
        if deployed is not None:
            live = instance.as_deployed(deployed.revision, deployed.config, deployed.secrets)
        ref = all_hosts(project)[instance.host]
        target = Release(live, flat.realise(live), ref, flat.loaded.home)
        expected = Expected(
            instance=instance.name,
            service=instance.service,
            revision=deployed.revision if deployed is not None else None,
            lifecycle=lifecycle,
            program=target.program,
            bluegreen=live.strategy.uses_slots,
        )
        by_host.setdefault(instance.host, []).append(Watched(expected, target))
    out = []
    for name, ref in all_hosts(project).items():
        if sites is not None and ref.site not in sites:
            continue
        watched = by_host.get(name, [])
        root = ref.root(session.home) if not watched else watched[0].target.root
        out.append(
            WatchedHost(name, ref.site, str(root), tuple(watched), frozenset(known.get(name, ())))
        )
    return out


def _chosen_sites(session: Session, site: str | None, sites: Sites) -> set[str]:
    every = set(session.flatten(empty_ok=True).loaded.project.sites)
    if site is not None:
        if site not in every:
            raise UsageError(f"no site named {site!r} (sites: {', '.join(sorted(every))})")
        if sites is not None and site not in sites:
            raise UsageError(f"site {site} is not yours")
        return {site}
    return every if sites is None else every & set(sites)


def _bus(session: Session, on_event: EventSink | None) -> EventBus:
    bus = EventBus(session.store.append_events)
    if on_event is not None:
        bus.subscribe(on_event)
    return bus


def _site_of_unknown(session: Session, drift: Drift) -> str | None:
    from shipyard.config.topology import all_hosts

    host = drift.instance.partition("@")[2]
    ref = all_hosts(session.flatten().loaded.project).get(host)
    return ref.site if ref is not None else None


__all__ = [
    "HealthReport",
    "HostHealth",
    "InstanceHealth",
    "SiteHealth",
    "SiteState",
    "Watch",
    "accept",
    "check",
    "drift",
    "health",
    "sites_of",
    "watched_hosts",
]
