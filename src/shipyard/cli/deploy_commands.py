"""Commands that change or report deployments: bootstrap, deploy, rollback, status, diff, audit."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import find_instance, select_instances, state
from shipyard.cli.render import console, print_json, short
from shipyard.cli.state_access import actor, lease_policy, open_project_store
from shipyard.config.flatten import Instance
from shipyard.config.models import Strategy
from shipyard.config.topology import all_hosts
from shipyard.deploy.bootstrap import bootstrap_host
from shipyard.deploy.manager import Deployer, RolloutReport
from shipyard.deploy.runs import Outcome
from shipyard.errors import DeployError, UsageError
from shipyard.executors.factory import ExecutorPool
from shipyard.store import DeploymentKind

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
    loaded = state(ctx).load()
    refs = [r for r in all_hosts(loaded.project).values() if site is None or r.site == site]

    flat = state(ctx).flatten()
    blue_green = {
        i.host
        for i in flat.instances.values()
        if Strategy.model_validate(i.config["strategy"]).uses_slots
    }

    async def run() -> list[Any]:
        async with ExecutorPool(loaded.project.ssh, loaded.root) as pool:
            return await asyncio.gather(
                *(
                    bootstrap_host(
                        pool.executor(r.name, r.host),
                        r,
                        loaded.root,
                        needs_nginx=r.name in blue_green,
                    )
                    for r in refs
                )
            )

    reports = asyncio.run(run())
    if json_output:
        print_json([vars(r) for r in reports])
    else:
        table = Table("host", "found", "did", "error")
        for r in reports:
            table.add_row(r.host, "\n".join(r.found), "\n".join(r.did), Text(r.error, "red"))
        console().print(table)
    if any(r.error for r in reports):
        raise typer.Exit(1)


def _run_rollout(ctx: typer.Context, work: Any, names: list[Instance], json_output: bool) -> None:
    cli = state(ctx)
    flat = cli.flatten()
    loaded = flat.loaded
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

    async def run() -> RolloutReport:
        def progress(instance: str, what: str) -> None:
            statuses[instance] = what

        with open_project_store(cli) as store:
            async with ExecutorPool(loaded.project.ssh, loaded.root) as pool:
                deployer = Deployer(
                    flat,
                    store,
                    lambda ref: pool.executor(ref.name, ref.host),
                    actor(),
                    max_in_flight=loaded.project.ssh.max_in_flight,
                    progress=progress,
                    policy=lease_policy(os.environ),
                )
                result: RolloutReport = await work(deployer)
                return result

    if json_output or not table_out.is_terminal:
        report = asyncio.run(run())
    else:
        with Live(console=table_out, transient=True, get_renderable=view):
            report = asyncio.run(run())
    _print_report(report, json_output)
    if report.failed or any(o.result == "skipped" for o in report.outcomes):
        raise typer.Exit(1)


def _print_report(report: RolloutReport, json_output: bool) -> None:
    if json_output:
        print_json(
            {
                "rollout": report.rollout_id,
                "ok": report.ok,
                "outcomes": [vars(o) for o in report.outcomes],
            }
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
            o.reason,
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
    stale: Annotated[bool, typer.Option("--stale", help="Only what is stale (default).")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would happen.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Deploy what is stale, in dependency waves; instances of a wave in parallel."""
    flat = state(ctx).flatten()
    chosen = select_instances(flat, names, site=site)
    request = " ".join(["deploy", *(names or []), *([f"--site {site}"] if site else [])])

    async def work(deployer: Deployer) -> RolloutReport:
        return await deployer.deploy(chosen, request=request, dry_run=dry_run)

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

    async def work(deployer: Deployer) -> RolloutReport:
        report = RolloutReport(rollout_id="rollback")
        outcome: Outcome = await deployer.deploy_one(old, kind=DeploymentKind.ROLLBACK)
        report.outcomes.append(outcome)
        return report

    _run_rollout(ctx, work, [old], json_output)
