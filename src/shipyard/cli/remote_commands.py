"""Ad-hoc work on hosts: `shipyard run` (a command on selected hosts) and `shipyard hosts`."""

from __future__ import annotations

import asyncio
import difflib
import sys
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import seconds, state, whole_number
from shipyard.cli.render import console, host_text, print_json
from shipyard.config.loader import LoadedProject
from shipyard.config.topology import HostRef, all_hosts
from shipyard.errors import UsageError
from shipyard.executors import (
    CommandResult,
    Executor,
    ExecutorPool,
    FanoutResult,
    fan_out,
    is_local,
)
from shipyard.masking import Masker

T = TypeVar("T")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
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
    loaded = state(ctx).load()
    masker = state(ctx).masker()
    refs = select_hosts(loaded, sites=site, hosts=host, labels=label)

    async def one(executor: Executor) -> CommandResult:
        return await executor.run(command, check=False, timeout=timeout, sudo=sudo or None)

    result = fan_out_with_progress(
        loaded, refs, one, limit=in_flight, accept_new=accept_new, quiet=json_output
    )
    failed: dict[str, str] = {}
    for outcome in result.outcomes:
        if outcome.value is None:
            failed[outcome.host] = outcome.reason
        elif not outcome.value.ok:
            stderr = outcome.value.stderr.strip().splitlines()
            detail = f": {stderr[-1]}" if stderr else ""
            failed[outcome.host] = f"exit status {outcome.value.exit_status}{detail}"
    if json_output:
        outputs = [_run_json(refs[o.host], o.value, o.reason) for o in result.outcomes]
        print_json(outputs, masker=masker)
    else:
        out = console()
        table = Table("host", "site", "status", "exit", "seconds", "output", box=None)
        for outcome in result.outcomes:
            value, name = outcome.value, outcome.host
            status = Text("failed", "red") if name in failed else Text("ok", "green")
            exit_status = "-" if value is None else str(value.exit_status)
            first = value.first_line() if value is not None else ""
            seconds = f"{value.duration:.2f}" if value is not None else "-"
            table.add_row(
                name, refs[name].site, status, exit_status, seconds, host_text(masker, first)
            )
        out.print(table)
        _print_failures(out, failed, len(refs), masker)
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
    loaded = state(ctx).load()
    masker = state(ctx).masker()
    refs = select_hosts(loaded, sites=site, hosts=host, labels=label)

    async def reach(executor: Executor) -> CommandResult:
        return await executor.run(["true"])

    result = fan_out_with_progress(loaded, refs, reach, accept_new=accept_new, quiet=json_output)
    failed = {o.host: o.reason for o in result.outcomes if not o.ok}
    if json_output:
        print_json(
            [
                {**_host_json(refs[o.host]), "reachable": o.ok, "error": o.reason or None}
                for o in result.outcomes
            ],
            masker=masker,
        )
    else:
        out = console()
        table = Table("host", "site", "address", "labels", "reachable", "seconds", box=None)
        for outcome in result.outcomes:
            ref = refs[outcome.host]
            reach_text = Text("yes", "green") if outcome.ok else Text("no", "red")
            info = _host_json(ref)
            table.add_row(
                ref.name,
                ref.site,
                info["address"],
                ",".join(ref.host.labels),
                reach_text,
                f"{outcome.duration:.2f}",
            )
        out.print(table)
        _print_failures(out, failed, len(refs), masker)
    if failed:
        raise typer.Exit(1)


def select_hosts(
    loaded: LoadedProject,
    *,
    sites: list[str] | None = None,
    hosts: list[str] | None = None,
    labels: list[str] | None = None,
) -> dict[str, HostRef]:
    """The hosts matching every filter given (all hosts when none is); unknown names refused."""
    known = all_hosts(loaded.project)
    for name in sites or []:
        if name not in loaded.project.sites:
            raise UsageError(f'unknown site "{name}"{_suggest(name, list(loaded.project.sites))}')
    for name in hosts or []:
        if name not in known:
            raise UsageError(f'unknown host "{name}"{_suggest(name, list(known))}')
    chosen = {
        name: ref
        for name, ref in known.items()
        if (not sites or ref.site in sites)
        and (not hosts or name in hosts)
        and (not labels or set(labels) & set(ref.host.labels))
    }
    if not chosen:
        raise UsageError("no host matches the selection")
    return chosen


def fan_out_with_progress(
    loaded: LoadedProject,
    refs: dict[str, HostRef],
    task: Callable[[Executor], Awaitable[T]],
    *,
    limit: int | None = None,
    accept_new: bool = False,
    quiet: bool = False,
) -> FanoutResult[T]:
    """Run `task` on every host through one pool, with a progress bar on a terminal."""
    ssh = loaded.project.ssh
    err = Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )
    bar = progress.add_task("hosts", total=len(refs), failed="")
    failures = 0

    def advance(outcome: Any) -> None:
        nonlocal failures
        value = outcome.value
        if not outcome.ok or (isinstance(value, CommandResult) and not value.ok):
            failures += 1
        progress.update(bar, advance=1, failed=f"[red]{failures} failed" if failures else "")

    async def main() -> FanoutResult[T]:
        async with ExecutorPool(ssh, loaded.root, accept_new=accept_new or None) as pool:
            executors = [pool.executor(name, ref.host) for name, ref in refs.items()]
            return await fan_out(
                executors, task, limit=limit or ssh.max_in_flight, progress=advance
            )

    with progress:
        return asyncio.run(main())


def _print_failures(out: Console, failed: dict[str, str], total: int, masker: Masker) -> None:
    if not failed:
        out.print(f"[green]all {total} host(s) ok[/]")
        return
    out.print(f"[red]{len(failed)} of {total} host(s) failed:[/]")
    for name, reason in failed.items():
        out.print(Text.assemble("  ", (name, "bold"), ": ", host_text(masker, reason)))


def _host_json(ref: HostRef) -> dict[str, Any]:
    return {
        "host": ref.name,
        "site": ref.site,
        "address": "local" if is_local(ref.name, ref.host) else (ref.host.address or ref.name),
        "labels": list(ref.host.labels),
    }


def _run_json(ref: HostRef, value: CommandResult | None, reason: str) -> dict[str, Any]:
    if value is None:
        return {"host": ref.name, "site": ref.site, "ok": False, "error": reason}
    return {
        "host": ref.name,
        "site": ref.site,
        "ok": value.ok,
        "exit_status": value.exit_status,
        "stdout": value.stdout,
        "stderr": value.stderr,
        "stdout_truncated": value.stdout_truncated,
        "stderr_truncated": value.stderr_truncated,
        "seconds": round(value.duration, 3),
        "error": None,
    }


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""
