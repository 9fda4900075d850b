"""Commands that change or report deployments: bootstrap, deploy, rollback, status, diff, audit."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import run_async, session
from shipyard.cli.render import STYLE, JsonFlag, console, host_text, print_json, short
from shipyard.masking import Masker

if TYPE_CHECKING:
    from shipyard.config.flatten import Instance
    from shipyard.deploy.manager import Deployer, RolloutReport

LIVE_ROWS = 30


@app.command()
def bootstrap(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Prepare hosts once: deploy root, a reachable supervisord, the user's rights."""
    from shipyard.app.hosts import bootstrap as bootstrap_hosts

    cli = session(ctx)
    reports = run_async(bootstrap_hosts(cli, site=site))
    masker = cli.masker()
    failed = [r for r in reports if r.error]
    if json_output:
        print_json([r.to_json() for r in reports], masker=masker)
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
                    "  ", host_text(masker, r.host, "bold"), ": ", host_text(masker, r.reason)
                )
            )
    if failed:
        raise typer.Exit(1)


def _run_rollout(ctx: typer.Context, work: Any, names: list[Instance], json_output: bool) -> None:
    from shipyard.deploy.manager import Deployer

    cli = session(ctx)
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
        def progress(instance: str, what: str) -> None:
            if lines is not None and statuses.get(instance) != what:
                lines.say(instance, what)
            statuses[instance] = what

        store = cli.store
        async with cli.executor_pool() as pool:
            deployer = Deployer(
                flat,
                store,
                lambda ref: pool.executor(ref.name, ref.host),
                cli.actor,
                max_in_flight=loaded.project.ssh.max_in_flight,
                progress=progress,
                masker=masker,
                controller=cli.controller,
                policy=cli.policy,
            )
            result: RolloutReport = await work(deployer)
            return result

    if lines is not None:
        report = run_async(run())
    else:
        with Live(console=table_out, transient=True, get_renderable=view):
            report = run_async(run())
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
    from shipyard.app.selectors import select_instances

    flat = session(ctx).flatten()
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
    from shipyard.app.selectors import find_instance
    from shipyard.deploy.manager import RolloutReport
    from shipyard.deploy.runs import Outcome
    from shipyard.errors import DeployError, UsageError
    from shipyard.store import DeploymentKind

    cli = session(ctx)
    current = find_instance(cli.flatten(), instance)
    store = cli.store
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
