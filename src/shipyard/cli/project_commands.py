"""Commands about the project itself: init, validate, show, plan, schema."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from shipyard.cli.app import app
from shipyard.cli.columns import BIG, print_columns
from shipyard.cli.context import port_number, remote, session
from shipyard.cli.render import PLAN_HEADERS, JsonFlag, console, plan_cells, plan_table, print_json
from shipyard.masking import NO_SECRETS


@app.command()
def schema(
    markdown: Annotated[bool, typer.Option(help="Print the reference as Markdown.")] = False,
) -> None:
    """Print the JSON Schema of shipyard.yaml, for editors to complete and check it."""
    from shipyard.config.models import Project
    from shipyard.config.reference import config_reference

    if markdown:
        typer.echo(config_reference(), nl=False)
        return
    typer.echo(json.dumps(Project.model_json_schema(), indent=2, sort_keys=True))


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the project.")] = Path("."),
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
    port: Annotated[
        int | None,
        typer.Option(
            help="The port the service listens on at 127.0.0.1 (default: 8080, or the next "
            "free one).",
            callback=port_number,
        ),
    ] = None,
) -> None:
    """Write a small working project (one service on a local host) to DIRECTORY."""
    from shipyard.cli.init_project import ADDRESS, DEFAULT_PORT, free_port, in_use, write_example

    err = Console(stderr=True, highlight=False)
    if port is None:
        port = free_port()
        if port != DEFAULT_PORT:
            err.print(
                f"{ADDRESS}:{DEFAULT_PORT} is in use by another program: "
                f"the service listens on port {port} (--port chooses)"
            )
    elif in_use(port):
        err.print(f"[yellow]note:[/] {ADDRESS}:{port} is in use now: deploying needs it free")
    written = write_example(directory, port=port, force=force)
    out = console()
    for path in written:
        out.print(f"wrote {path}")
    out.print(f"next: cd {directory} && shipyard validate && shipyard plan")


@app.command()
def validate(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Check the project: schema, references, cycles, locks and every template's rendering."""
    from shipyard.app import project

    client = remote(ctx)
    if client is not None:
        masker, summary = NO_SECRETS, project.Validation.from_json(client.get("/api/validate"))
    else:
        cli = session(ctx)
        summary = project.validate(cli)
        masker = cli.masker()
    if json_output:
        print_json(summary.to_json(), masker=masker)
        return
    console().print(
        f"[green]valid[/]: {summary.sites} site(s), {summary.hosts} host(s), "
        f"{summary.templates} template(s), {summary.services} service(s), "
        f"{summary.instances} instance(s)"
    )


@app.command()
def show(
    ctx: typer.Context,
    instance: Annotated[str, typer.Argument(help="An instance, service@host.")],
    json_output: JsonFlag = False,
) -> None:
    """Print the flattened config of INSTANCE, with its revision (secrets read ***)."""
    from urllib.parse import quote

    from shipyard.app import project

    client = remote(ctx)
    if client is not None:
        masker = NO_SECRETS
        found = project.InstanceConfig.from_json(
            client.get(f"/api/instances/{quote(instance, safe='@')}")
        )
    else:
        cli = session(ctx)
        found = project.show(cli, instance)
        masker = cli.masker()
    if json_output:
        print_json(found.to_json(), masker=masker)
        return
    from rich.syntax import Syntax

    out = console()
    out.print(f"[bold]{found.instance}[/]  revision [cyan]{found.revision}[/]")
    text = json.dumps(found.config, indent=2, sort_keys=True, ensure_ascii=False)
    text = masker.shown(text)
    out.print(Syntax(text, "json", theme="ansi_dark", background_color="default"))


@app.command()
def plan(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Services or instances.")] = None,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """Show instances, their revisions, what is stale, and the dependency waves of a deploy."""
    from shipyard.app import project

    client = remote(ctx)
    if client is not None:
        masker = NO_SECRETS
        view = project.PlanView.from_json(
            client.get("/api/plan", {"instances": names or None, "site": site})
        )
    else:
        cli = session(ctx)
        view = project.plan(cli, names, site=site)
        masker = cli.masker()
    if json_output:
        print_json(view.to_json(), masker=masker)
        return
    result = view.plan
    out = console()
    if len(result.steps) > BIG:
        print_columns(out, PLAN_HEADERS, plan_cells(result))
    else:
        out.print(plan_table(result))
    out.print(
        f"{len(result.changes)} of {len(result.steps)} instance(s) to deploy "
        f"in {len(result.waves)} wave(s)"
    )
    if result.orphans:
        out.print(f"[yellow]deployed but no longer configured:[/] {', '.join(result.orphans)}")
