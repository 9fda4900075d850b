"""Use cases on hosts: bootstrap them, run a command on them, list them and check each one."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from shipyard.app.selectors import check_site, select_hosts
from shipyard.app.session import Session
from shipyard.config.topology import HostRef, all_hosts

if TYPE_CHECKING:
    from shipyard.executors.base import CommandResult, Executor
    from shipyard.executors.fanout import HostOutcome

T = TypeVar("T")

# Told as each host finishes: True when it went well.
HostProgress = Callable[[bool], None]


@dataclass(frozen=True)
class BootstrapResult:
    """What bootstrap found on one host and what it did; `error` is empty when it went well."""

    host: str
    found: tuple[str, ...] = ()
    did: tuple[str, ...] = ()
    error: str = ""

    @property
    def reason(self) -> str:
        """The error, once prefixed by its host's name (some errors already carry it)."""
        prefix = f"{self.host}: "
        return self.error[len(prefix) :] if self.error.startswith(prefix) else self.error

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "found": list(self.found), "did": list(self.did)}


def hosts_needing_nginx(session: Session) -> set[str]:
    """Hosts of an instance whose strategy switches slots behind nginx."""
    flat = session.flatten(empty_ok=True)
    return {i.host for i in flat.instances.values() if i.strategy.uses_slots}


def bootstrap_hosts(session: Session, *, site: str | None = None) -> list[HostRef]:
    """The hosts a bootstrap (of `site`) prepares; UsageError for an unknown site."""
    project = session.flatten(empty_ok=True).loaded.project
    check_site(project, site)
    return [r for r in all_hosts(project).values() if site is None or r.site == site]


async def bootstrap(session: Session, *, site: str | None = None) -> list[BootstrapResult]:
    """Prepare the hosts (of `site`) once: deploy root, a reachable supervisor, the user's
    rights, and nginx where a blue/green instance needs it. A host's trouble is its result."""
    from shipyard.deploy.bootstrap import HostReport, bootstrap_host
    from shipyard.errors import ShipyardError

    flat = session.flatten(empty_ok=True)  # hosts are prepared before services are placed
    loaded = flat.loaded
    refs = bootstrap_hosts(session, site=site)
    needs_nginx = hosts_needing_nginx(session)
    masker = session.masker()

    async with session.executor_pool() as pool:

        async def one(ref: HostRef) -> BootstrapResult:
            try:
                report = await bootstrap_host(
                    pool.executor(ref.name, ref.host),
                    ref,
                    loaded.home,
                    needs_nginx=ref.name in needs_nginx,
                )
            except (ShipyardError, OSError) as trouble:
                # bootstrap_host reports a host's own trouble; anything else still belongs to
                # this host, and the other hosts go on.
                report = HostReport(ref.name, error=str(trouble))
            return BootstrapResult(
                report.host,
                tuple(masker.text(line) for line in report.found),
                tuple(masker.text(line) for line in report.did),
                masker.text(report.error),
            )

        return list(await asyncio.gather(*(one(r) for r in refs)))


@dataclass(frozen=True)
class HostRun:
    """A command's result on one host, or why it did not run (`error`)."""

    host: str
    site: str
    exit_status: int | None = None
    stdout: str = ""
    stderr: str = ""
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    seconds: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_status == 0

    @property
    def failure(self) -> str:
        """Why it failed ("" when it did not): the error, or the exit status and last line."""
        if self.error is not None:
            return self.error
        if self.exit_status == 0:
            return ""
        stderr = self.stderr.strip().splitlines()
        return f"exit status {self.exit_status}" + (f": {stderr[-1]}" if stderr else "")

    @property
    def first_line(self) -> str:
        for text in (self.stdout, self.stderr):
            for line in text.splitlines():
                if line.strip():
                    return line.strip()
        return ""

    def to_json(self) -> dict[str, Any]:
        if self.exit_status is None:
            return {"host": self.host, "site": self.site, "ok": False, "error": self.error}
        return {
            "host": self.host,
            "site": self.site,
            "ok": self.ok,
            "exit_status": self.exit_status,
            "stdout": self.stdout,
            "stderr": self.stderr,
            "stdout_truncated": self.stdout_truncated,
            "stderr_truncated": self.stderr_truncated,
            "seconds": round(self.seconds or 0.0, 3),
            "error": None,
        }


async def run_on_hosts(
    session: Session,
    command: Sequence[str],
    *,
    sites: Sequence[str] | None = None,
    hosts: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    timeout: float | None = None,
    sudo: bool = False,
    in_flight: int | None = None,
    accept_new: bool = False,
    progress: HostProgress | None = None,
) -> list[HostRun]:
    """Run `command` on the selected hosts (all by default), at most `in_flight` at once."""
    refs = select_hosts(session.load().project, sites=sites, hosts=hosts, labels=labels)
    masker = session.masker()
    argv = list(command)

    async def one(executor: Executor) -> CommandResult:
        return await executor.run(argv, check=False, timeout=timeout, sudo=sudo or None)

    def told(outcome: HostOutcome[CommandResult]) -> None:
        value = outcome.value
        if progress is not None:
            progress(outcome.ok and (value is None or value.ok))

    outcomes = await _fan_out(session, refs, one, in_flight, accept_new, told)
    out: list[HostRun] = []
    for outcome in outcomes:
        ref = refs[outcome.host]
        value = outcome.value
        if value is None:
            out.append(HostRun(ref.name, ref.site, error=masker.text(outcome.reason)))
            continue
        out.append(
            HostRun(
                ref.name,
                ref.site,
                exit_status=value.exit_status,
                stdout=masker.text(value.stdout),
                stderr=masker.text(value.stderr),
                stdout_truncated=value.stdout_truncated,
                stderr_truncated=value.stderr_truncated,
                seconds=value.duration,
            )
        )
    return out


@dataclass(frozen=True)
class HostCheck:
    """A host, where it is, and whether it answered."""

    host: str
    site: str
    address: str
    labels: tuple[str, ...]
    reachable: bool
    seconds: float
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "labels": list(self.labels)}


async def check_hosts(
    session: Session,
    *,
    sites: Sequence[str] | None = None,
    hosts: Sequence[str] | None = None,
    labels: Sequence[str] | None = None,
    accept_new: bool = False,
    progress: HostProgress | None = None,
) -> list[HostCheck]:
    """The selected hosts, each checked by running `true` on it."""
    project = session.load().project
    refs = select_hosts(project, sites=sites, hosts=hosts, labels=labels)
    masker = session.masker()

    async def reach(executor: Executor) -> CommandResult:
        return await executor.run(["true"])

    def told(outcome: HostOutcome[CommandResult]) -> None:
        if progress is not None:
            progress(bool(outcome.ok))

    outcomes = await _fan_out(session, refs, reach, None, accept_new, told)
    out: list[HostCheck] = []
    for outcome in outcomes:
        ref = refs[outcome.host]
        address = ref.access(project.ssh, session.home).shown_address
        out.append(
            HostCheck(
                ref.name,
                ref.site,
                address,
                tuple(ref.host.labels),
                outcome.ok,
                outcome.duration,
                masker.text(outcome.reason) or None,
            )
        )
    return out


async def _fan_out(
    session: Session,
    refs: dict[str, HostRef],
    task: Callable[[Executor], Awaitable[T]],
    in_flight: int | None,
    accept_new: bool,
    told: Callable[[HostOutcome[T]], None],
) -> list[HostOutcome[T]]:
    """Run `task` on every host through one pool; the hosts' outcomes in the order given."""
    from shipyard.executors.fanout import fan_out

    ssh = session.load().project.ssh
    async with session.executor_pool(accept_new=accept_new or None) as pool:
        executors = [pool.executor(name, ref.host) for name, ref in refs.items()]
        result = await fan_out(executors, task, limit=in_flight or ssh.max_in_flight, progress=told)
    return list(result.outcomes)
