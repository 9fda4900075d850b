"""Commands that report on deployments: status (with blue/green slots), diff, audit."""

from __future__ import annotations

import asyncio
import os
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import CliState, select_instances, state, whole_number
from shipyard.cli.deploy_commands import STYLE, JsonFlag
from shipyard.cli.render import console, host_text, print_diff, print_json, short
from shipyard.cli.state_access import open_project_store
from shipyard.config.flatten import Instance
from shipyard.config.topology import all_hosts
from shipyard.deploy.bluegreen import BlueGreen
from shipyard.deploy.instance import Release
from shipyard.errors import ShipyardError
from shipyard.executors.factory import ExecutorPool
from shipyard.masking import Masker
from shipyard.plan.diff import diff_configs
from shipyard.store import database_url, open_store


@app.command()
def status(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Per instance: site, host, status, deployed revision, stale or not, last deployment."""
    cli = state(ctx)
    flat = cli.flatten()
    masker = cli.masker()
    chosen = select_instances(flat, site=site)
    with open_project_store(cli) as store:
        states = {s.name: s for s in store.instance_states()}
    slotted = [i for i in chosen if i.strategy.uses_slots]
    slot_states = asyncio.run(_slot_states(cli, slotted)) if slotted else {}
    rows: list[dict[str, Any]] = []
    for instance in chosen:
        found = states.get(instance.name)
        deployed = found.deployed.revision if found and found.deployed else None
        last = found.last_deployment if found else None
        rows.append(
            {
                "slots": slot_states.get(instance.name),
                "instance": instance.name,
                "site": instance.site,
                "host": instance.host,
                "status": found.status.value if found else "never deployed",
                "deployed_revision": deployed,
                "revision": instance.revision,
                "stale": deployed != instance.revision,
                "last": None
                if last is None
                else {
                    "id": last.id,
                    "kind": last.kind.value,
                    "actor": last.actor,
                    "started": last.started_at.isoformat(timespec="seconds"),
                    "finished": last.finished_at.isoformat(timespec="seconds")
                    if last.finished_at
                    else None,
                    "status": last.status.value,
                    "error": last.error,
                },
            }
        )
    if json_output:
        print_json(rows, masker=masker)
        return
    table = Table(
        "instance", "site", "host", "status", "deployed", "stale", "slots", "last deployment"
    )
    for row in rows:
        shown: Any = row["last"]
        summary = (
            "" if shown is None else f"{shown['status']} by {shown['actor']} at {shown['started']}"
        )
        if shown and shown["error"]:
            summary += f": {str(shown['error']).splitlines()[0]}"
        table.add_row(
            host_text(masker, row["instance"]),
            host_text(masker, row["site"]),
            host_text(masker, row["host"]),
            host_text(masker, row["status"], STYLE.get(str(row["status"]), "")),
            short(row["deployed_revision"]),
            Text("stale", "yellow") if row["stale"] else Text("current", "green"),
            _slots_text(row["slots"], masker),
            host_text(masker, summary),
        )
    console().print(table)


async def _slot_states(cli: CliState, instances: list[Instance]) -> dict[str, dict[str, Any]]:
    """Blue/green slots as the hosts report them: live, draining, and each slot's revision."""
    loaded = cli.load()
    hosts = all_hosts(loaded.project)
    out: dict[str, dict[str, Any]] = {}
    async with ExecutorPool(loaded.project.ssh, loaded.root) as pool:

        async def one(instance: Instance) -> None:
            ref = hosts[instance.host]
            target = Release(instance, instance.config, ref, loaded.root)
            try:
                found = await BlueGreen(pool.executor(ref.name, ref.host), target).state()
            except ShipyardError as trouble:
                out[instance.name] = {"error": str(trouble)}
                return
            out[instance.name] = {
                "live": found.live,
                "draining": found.draining,
                "blue": found.blue,
                "green": found.green,
            }

        await asyncio.gather(*(one(i) for i in instances))
    return out


def _slots_text(slots: dict[str, Any] | None, masker: Masker) -> Text:
    if not slots:
        return Text("")
    if "error" in slots:
        return host_text(masker, f"unknown: {slots['error']}", "red")
    text = host_text(masker, f"{slots['live']} live" if slots["live"] else "none live", "green")
    if slots["draining"]:
        text.append(host_text(masker, f", {slots['draining']} draining", "yellow"))
    return text


@app.command()
def diff(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Services or instances.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """The deployed snapshot against the template-derived config (secrets masked)."""
    cli = state(ctx)
    flat = cli.flatten()
    masker = cli.masker()
    chosen = select_instances(flat, names)
    with open_project_store(cli) as store:
        states = {s.name: s for s in store.instance_states()}
    result = {}
    for instance in chosen:
        found = states.get(instance.name)
        deployed = found.deployed if found else None
        result[instance.name] = diff_configs(
            deployed.config if deployed else None,
            instance.config,
            old_secrets=deployed.secrets if deployed else None,
            new_secrets=instance.secrets,
        )
    if json_output:
        diffs = {name: [e.as_json() for e in entries] for name, entries in result.items()}
        print_json(diffs, masker=masker)
        return
    out = console()
    for name, entries in result.items():
        print_diff(out, name, entries, masker=masker)


audit_app = typer.Typer()  # `audit` prints the log, `audit verify` checks its chain
app.add_typer(audit_app, name="audit")


@audit_app.callback(invoke_without_command=True)
def audit(
    ctx: typer.Context,
    instance: Annotated[str | None, typer.Option(help="Only this instance.")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only entries after this time (UTC).")
    ] = None,
    limit: Annotated[
        int, typer.Option(help="At most this many entries.", callback=whole_number)
    ] = 100,
    before: Annotated[
        int | None,
        typer.Option(
            help="Only entries older than the one with this id (the next page).",
            callback=whole_number,
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Print the audit log, newest first; page back with --before (the oldest id shown)."""
    if ctx.invoked_subcommand is not None:
        return
    cli = state(ctx)
    if since is not None and since.tzinfo is None:
        from datetime import UTC

        since = since.replace(tzinfo=UTC)
    masker = cli.masker()
    with open_project_store(cli) as store:
        found = store.audit(instance=instance, since=since, limit=limit, before=before)
    entries = sorted(found, key=lambda e: e.id, reverse=True)
    if json_output:
        print_json([vars(e) for e in entries], masker=masker)
        return
    table = Table("id", "at", "actor", "action", "target", "result")
    for e in entries:
        table.add_row(
            str(e.id),
            e.at.isoformat(timespec="seconds"),
            *(host_text(masker, text) for text in (e.actor, e.action, e.target, e.result)),
        )
    out = console()
    out.print(table)
    if len(entries) == limit:
        more = ["shipyard audit", f"--before {entries[-1].id}", f"--limit {limit}"]
        if instance is not None:
            more.append(f"--instance {instance}")
        if since is not None:
            more.append(f"--since {since:%Y-%m-%dT%H:%M:%S}")
        out.print(Text(f"older entries may follow: {' '.join(more)}", "dim"))


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Check the audit log's hash chain; exit 1 naming the first row where it breaks."""
    cli = state(ctx)
    # Only reads: no recovery here, so verifying never writes to what it checks.
    with open_store(database_url(cli.load().root, os.environ)) as store:
        report = store.verify_audit()
    broken = report.broken
    if json_output:
        shown = None if broken is None else {"row": broken.row_id, "reason": broken.reason}
        print_json(
            {"whole": report.whole, "count": report.count, "head": report.head, "broken": shown},
            masker=cli.masker(),
        )
    elif broken is None:
        line = f"audit log whole: {report.count} row(s), head {report.head}"
        console().print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        console().print(
            f"audit log broken at row {broken.row_id}: {broken.reason}"
            f" ({report.count} row(s) before it hold)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if broken is not None:
        raise typer.Exit(1)
