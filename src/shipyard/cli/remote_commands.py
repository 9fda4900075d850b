"""Ad-hoc work on hosts: `shipyard run` (a command on selected hosts) and `shipyard hosts`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import run_async, seconds, session, whole_number
from shipyard.cli.render import JsonFlag, console, host_text, print_json
from shipyard.masking import Masker

AcceptNew = Annotated[
    bool,
    typer.Option(
        "--accept-new",
        help="Trust host keys seen for the first time (recorded in .shipyard/known_hosts); "
        "a changed key is always refused.",
    ),
]
Sites = Annotated[list[str] | None, typer.Option("--site", help="Only hosts of this site.")]
Hosts = Annotated[list[str] | None, typer.Option("--host", help="Only this host.")]
Labels = Annotated[list[str] | None, typer.Option("--label", help="Only hosts with this label.")]


@app.command(name="run")
def run_command(
    ctx: typer.Context,
    command: Annotated[list[str], typer.Argument(help="The command and its arguments, after --.")],
    site: Sites = None,
    host: Hosts = None,
    label: Labels = None,
    timeout: Annotated[
        float | None,
        typer.Option(help="Seconds the command may run on each host.", callback=seconds),
    ] = None,
    sudo: Annotated[bool, typer.Option("--sudo", help="Run it through sudo.")] = False,
    in_flight: Annotated[
        int | None,
        typer.Option(
            help="Hosts worked on at once (default: ssh.max_in_flight).", callback=whole_number
        ),
    ] = None,
    accept_new: AcceptNew = False,
    json_output: JsonFlag = False,
) -> None:
    """Run a command on the selected hosts (all by default): `shipyard run -- uname -r`."""
    from shipyard.app.hosts import run_on_hosts
    from shipyard.app.selectors import select_hosts

    cli = session(ctx)
    masker = cli.masker()
    total = len(select_hosts(cli.load().project, sites=site, hosts=host, labels=label))
    with _progress(total, quiet=json_output) as told:
        results = run_async(
            run_on_hosts(
                cli, command, sites=site, hosts=host, labels=label, timeout=timeout, sudo=sudo,
                in_flight=in_flight, accept_new=accept_new, progress=told,
            )
        )  # fmt: skip
    failed = {r.host: r.failure for r in results if not r.ok}
    if json_output:
        print_json([r.to_json() for r in results], masker=masker)
    else:
        out = console()
        table = Table("host", "site", "status", "exit", "seconds", "output", box=None)
        for r in results:
            status = Text("failed", "red") if r.host in failed else Text("ok", "green")
            exit_status = "-" if r.exit_status is None else str(r.exit_status)
            took = "-" if r.seconds is None else f"{r.seconds:.2f}"
            table.add_row(
                r.host, r.site, status, exit_status, took, host_text(masker, r.first_line)
            )
        out.print(table)
        _print_failures(out, failed, len(results), masker)
    if failed:
        raise typer.Exit(1)


@app.command(name="hosts")
def hosts_command(
    ctx: typer.Context,
    site: Sites = None,
    host: Hosts = None,
    label: Labels = None,
    accept_new: AcceptNew = False,
    json_output: JsonFlag = False,
) -> None:
    """List the hosts and check that each one is reachable."""
    from shipyard.app.hosts import check_hosts
    from shipyard.app.selectors import select_hosts

    cli = session(ctx)
    masker = cli.masker()
    total = len(select_hosts(cli.load().project, sites=site, hosts=host, labels=label))
    with _progress(total, quiet=json_output) as told:
        checks = run_async(
            check_hosts(
                cli, sites=site, hosts=host, labels=label, accept_new=accept_new, progress=told
            )
        )
    failed = {c.host: c.error or "" for c in checks if not c.reachable}
    if json_output:
        print_json([c.to_json() for c in checks], masker=masker)
    else:
        out = console()
        table = Table("host", "site", "address", "labels", "reachable", "seconds", box=None)
        for c in checks:
            reach_text = Text("yes", "green") if c.reachable else Text("no", "red")
            table.add_row(
                c.host, c.site, c.address, ",".join(c.labels), reach_text, f"{c.seconds:.2f}"
            )
        out.print(table)
        _print_failures(out, failed, len(checks), masker)
    if failed:
        raise typer.Exit(1)


@contextmanager
def _progress(total: int, *, quiet: bool) -> Iterator[Callable[[bool], None]]:
    """A progress bar over the hosts on a terminal's stderr; yields what advances it."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )
    bar = progress.add_task("hosts", total=total, failed="")
    failures = 0

    def advance(ok: bool) -> None:
        nonlocal failures
        failures += not ok
        progress.update(bar, advance=1, failed=f"[red]{failures} failed" if failures else "")

    with progress:
        yield advance


def _print_failures(out: Console, failed: dict[str, str], total: int, masker: Masker) -> None:
    if not failed:
        out.print(f"[green]all {total} host(s) ok[/]")
        return
    out.print(f"[red]{len(failed)} of {total} host(s) failed:[/]")
    for name, reason in failed.items():
        out.print(Text.assemble("  ", (name, "bold"), ": ", host_text(masker, reason)))
