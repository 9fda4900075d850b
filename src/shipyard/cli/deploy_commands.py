"""Commands that change or report deployments: bootstrap, deploy, rollback, status, diff, audit."""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import find_instance, select_instances, state
from shipyard.cli.render import console, host_text, print_json, short
from shipyard.cli.state_access import actor, lease_policy, open_project_store
from shipyard.config.flatten import Instance
from shipyard.config.topology import HostRef, all_hosts
from shipyard.deploy.bootstrap import HostReport, bootstrap_host
from shipyard.deploy.manager import Deployer, RolloutReport
from shipyard.errors import DeployError, ShipyardError, UsageError
from shipyard.events import Event, EventBus, Phase
from shipyard.executors.factory import ExecutorPool
from shipyard.masking import Masker
from shipyard.store import Controller

LIVE_ROWS = 30
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
STYLE = {
    "success": "green",
    "failed": "red",
    "rejected": "red",
    "lost": "red",
    "skipped": "yellow",
    "unchanged": "dim",
    "planned": "cyan",
    "deploying": "cyan",
}


@app.command()
def bootstrap(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Prepare hosts once: deploy root, a reachable supervisord, the user's rights."""
    flat = state(ctx).flatten(empty_ok=True)  # hosts are prepared before services are placed
    masker = state(ctx).masker()
    loaded = flat.loaded
    if site is not None:
        select_instances(flat, site=site)  # refuses an unknown site, suggesting known ones
    refs = [r for r in all_hosts(loaded.project).values() if site is None or r.site == site]
    blue_green = {i.host for i in flat.instances.values() if i.strategy.uses_slots}

    async def one(pool: ExecutorPool, ref: HostRef) -> HostReport:
        try:
            return await bootstrap_host(
                pool.executor(ref.name, ref.host),
                ref,
                loaded.root,
                needs_nginx=ref.name in blue_green,
            )
        except (ShipyardError, OSError) as trouble:
            # bootstrap_host reports a host's own trouble; anything else still belongs to
            # this host, and the other hosts go on.
            return HostReport(ref.name, error=str(trouble))

    async def run() -> list[HostReport]:
        async with ExecutorPool(loaded.project.ssh, loaded.root) as pool:
            return await asyncio.gather(*(one(pool, r) for r in refs))

    reports = asyncio.run(run())
    failed = [r for r in reports if r.error]
    if json_output:
        print_json([vars(r) for r in reports], masker=masker)
    else:
        table = Table("host", "found", "did", "error")
        for r in reports:
            table.add_row(
                host_text(masker, r.host),
                host_text(masker, "\n".join(r.found)),
                host_text(masker, "\n".join(r.did)),
                host_text(masker, r.error, "red"),
            )
        out = console()
        out.print(table)
        if failed:
            out.print(Text(f"bootstrap failed on {len(failed)} of {len(reports)} host(s):", "red"))
        for r in failed:
            out.print(
                Text.assemble(
                    "  ",
                    host_text(masker, r.host, "bold"),
                    ": ",
                    host_text(masker, _without_host(r)),
                )
            )
    if failed:
        raise typer.Exit(1)


def _without_host(report: HostReport) -> str:
    """The report's error, once prefixed by its host's name (some errors already carry it)."""
    prefix = f"{report.host}: "
    return report.error[len(prefix) :] if report.error.startswith(prefix) else report.error


def _run_rollout(ctx: typer.Context, work: Any, names: list[Instance], json_output: bool) -> None:
    cli = state(ctx)
    flat = cli.flatten()
    loaded = flat.loaded
    masker = cli.masker()
    statuses: dict[str, str] = {i.name: "waiting" for i in names}
    table_out = console()

    def view() -> Table:
        # Drawn by Live a few times a second, never once per event: a rollout of a thousand
        # instances sends thousands. Past a screenful, a count per status and the busy ones.
        table = Table("instance", "status", box=None)
        shown = list(statuses.items())  # a copy: the deployment updates it meanwhile
        if len(shown) > LIVE_ROWS:
            counts: dict[str, int] = {}
            for _, status in shown:
                counts[status] = counts.get(status, 0) + 1
            summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
            table.add_row(f"{len(statuses)} instances", summary)
            settled = {"waiting", "success", "unchanged"}
            shown = [(n, s) for n, s in shown if s not in settled][:LIVE_ROWS]
        for name, status in shown:
            table.add_row(name, Text(status, STYLE.get(status, "")))
        return table

    # Without a terminal (CI logs) a line per change, as it happens; with --json, on stderr.
    lines = (
        None if table_out.is_terminal and not json_output else _ProgressLines(json_output, masker)
    )

    async def run() -> RolloutReport:
        def progress(event: Event) -> None:
            if event.instance is None:
                return
            what = event.result if event.phase is Phase.FINISHED and event.result else event.phase
            if lines is not None and statuses.get(event.instance) != what:
                lines.say(event.instance, what)
            statuses[event.instance] = what

        with open_project_store(cli) as store:
            events = EventBus(store.append_events)
            events.subscribe(progress)
            async with ExecutorPool(loaded.project.ssh, loaded.root) as pool:
                deployer = Deployer(
                    flat,
                    store,
                    lambda ref: pool.executor(ref.name, ref.host),
                    actor(),
                    max_in_flight=loaded.project.ssh.max_in_flight,
                    events=events,
                    masker=masker,
                    controller=Controller.of_process(),
                    policy=lease_policy(os.environ),
                )
                result: RolloutReport = await work(deployer)
                return result

    if lines is not None:
        report = asyncio.run(run())
    else:
        with Live(console=table_out, transient=True, get_renderable=view):
            report = asyncio.run(run())
    _print_report(report, json_output, masker)
    if report.failed or any(o.result == "skipped" for o in report.outcomes):
        raise typer.Exit(1)


class _ProgressLines:
    """`20:31:02 greeter@east-1 uploading`: one flushed line per instance state change."""

    def __init__(self, to_stderr: bool, masker: Masker) -> None:
        self.stream = sys.stderr if to_stderr else sys.stdout
        self.masker = masker

    def say(self, instance: str, what: str) -> None:
        at = datetime.now().strftime("%H:%M:%S")
        print(self.masker.shown(f"{at} {instance} {what}"), file=self.stream, flush=True)


def _print_report(report: RolloutReport, json_output: bool, masker: Masker) -> None:
    if json_output:
        print_json(
            {
                "rollout": report.rollout_id,
                "ok": report.ok,
                "outcomes": [vars(o) for o in report.outcomes],
            },
            masker=masker,
        )
        return
    out = console()
    table = Table("instance", "result", "revision", "seconds", "reason", title="rollout")
    for o in report.outcomes:
        table.add_row(
            o.instance,
            Text(o.result, STYLE.get(o.result, "")),
            short(o.revision),
            f"{o.seconds:.1f}" if o.seconds else "",
            host_text(masker, o.reason),
        )
    out.print(table)
    counts: dict[str, int] = {}
    for o in report.outcomes:
        counts[o.result] = counts.get(o.result, 0) + 1
    out.print(", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


@app.command()
def deploy(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Services or instances.")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Redeploy the chosen instances even when they are current "
            "(recorded in the audit log as a forced deploy).",
        ),
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Deploy what is stale (everything chosen, with --force), in dependency waves; instances
    of a wave in parallel."""
    flat = state(ctx).flatten()
    chosen = select_instances(flat, names, site=site)
    request = " ".join(
        ["deploy", *(names or []), *([f"--site {site}"] if site else []), *(["--force"] * force)]
    )

    async def work(deployer: Deployer) -> RolloutReport:
        return await deployer.deploy(chosen, request=request, dry_run=dry_run, force=force)

    _run_rollout(ctx, work, chosen, json_output)


@app.command()
def rollback(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="An instance, service@host.")],
    to: Annotated[
        str | None, typer.Option("--to", help="A kept revision (a prefix will do).")
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Switch INSTANCE back to a kept release (the previous one by default); nothing is uploaded."""
    cli = state(ctx)
    current = find_instance(cli.flatten(), instance)
    with open_project_store(cli) as store:
        live = store.instance_state(current.name)
        candidates = [
            d
            for d in store.deployments(instance=current.name)
            if d.status.value == "success"
            and (live is None or live.deployed is None or d.revision != live.deployed.revision)
        ]
        if to is not None:
            candidates = [d for d in candidates if d.revision.startswith(to)]
        if not candidates:
            wanted = f"revision {to}" if to else "an earlier successful release"
            raise UsageError(f"{current.name}: no {wanted} to roll back to")
        snapshot = store.snapshot_of(current.name, candidates[0].revision)
    if snapshot is None:
        raise DeployError(f"{current.name}: no snapshot of {candidates[0].revision[:12]}")
    old = current.as_deployed(snapshot.revision, snapshot.config, snapshot.secrets)

    request = " ".join(["rollback", instance, *([f"--to {to}"] if to else [])])

    async def work(deployer: Deployer) -> RolloutReport:
        return await deployer.rollback(old, request=request)

    _run_rollout(ctx, work, [old], json_output)
