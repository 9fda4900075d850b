"""Commands that change deployments: bootstrap, deploy, rollback; the live view of a rollout."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import remote, run_async, session
from shipyard.cli.render import STYLE, JsonFlag, console, host_text, print_json, short
from shipyard.errors import UsageError
from shipyard.masking import NO_SECRETS, Masker

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from shipyard.app.rollouts import RolloutHandle, RolloutResult
    from shipyard.app.session import Session
    from shipyard.client.http import ApiClient
    from shipyard.events import Event

LIVE_ROWS = 30
INTERRUPTED = "interrupted (Ctrl-C)"


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
    """Deploy what is stale (all chosen, with --force) in dependency waves, a wave in parallel.

    Ctrl-C cancels the rollout: steps in flight finish, what did not run is skipped.
    """
    from shipyard.app.rollouts import deploy_request, start_deploy
    from shipyard.app.selectors import select_instances

    api = remote(ctx)
    if api is not None:
        if dry_run:
            raise UsageError(
                "deploy --dry-run does not run through a server: `shipyard plan --server URL`"
                " shows what would be deployed"
            )
        body = {"instances": names or [], "site": site, "force": force}
        _run_remote(api, "/api/rollouts", body, json_output)
        return
    cli = session(ctx)
    chosen = select_instances(cli.flatten(), names, site=site)
    request = deploy_request(names, site, force)

    def start(heard: Callable[[Event], None]) -> Awaitable[RolloutHandle]:
        return start_deploy(
            cli, chosen, request=request, dry_run=dry_run, force=force, on_event=heard
        )

    _run_rollout(cli, start, [i.name for i in chosen], json_output)


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
    from shipyard.app.rollouts import rollback_target, start_rollback

    api = remote(ctx)
    if api is not None:
        _run_remote(api, "/api/rollbacks", {"instance": instance, "to": to}, json_output)
        return
    cli = session(ctx)
    old = rollback_target(cli, instance, to=to)
    request = " ".join(["rollback", old.name, *([f"--to {to}"] if to else [])])

    def start(heard: Callable[[Event], None]) -> Awaitable[RolloutHandle]:
        return start_rollback(cli, old, request=request, on_event=heard)

    _run_rollout(cli, start, [old.name], json_output)


Instances = Annotated[list[str], typer.Argument(help="Instances, service@host.")]


@app.command()
def disable(ctx: typer.Context, instances: Instances, json_output: JsonFlag = False) -> None:
    """Stop INSTANCES under their supervisor and keep them from starting at boot; the live
    release and its config stay on the host for `enable`."""
    _lifecycle(ctx, "disable", instances, json_output)


@app.command()
def enable(ctx: typer.Context, instances: Instances, json_output: JsonFlag = False) -> None:
    """Start disabled INSTANCES again from their live release and check their health."""
    _lifecycle(ctx, "enable", instances, json_output)


@app.command()
def delete(
    ctx: typer.Context,
    instances: Instances,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask first.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Remove INSTANCES from their hosts (program, releases, logs); each is marked deleted once
    its host has done it. Asks first unless --yes."""
    if not yes:
        if not sys.stdin.isatty():
            raise UsageError("delete removes releases from hosts: confirm with --yes")
        shown = ", ".join(instances)
        typer.confirm(f"Delete {shown} from their hosts?", abort=True)
    _lifecycle(ctx, "delete", instances, json_output)


def _lifecycle(ctx: typer.Context, name: str, instances: list[str], json_output: bool) -> None:
    from shipyard.app.lifecycle import Command, lifecycle_targets, start_lifecycle

    command = Command(name)
    api = remote(ctx)
    if api is not None:
        _run_remote(api, f"/api/lifecycle/{name}", {"instances": instances}, json_output)
        return
    cli = session(ctx)
    chosen = lifecycle_targets(cli, instances, command)
    request = " ".join([name, *(i.name for i in chosen)])

    def start(heard: Callable[[Event], None]) -> Awaitable[RolloutHandle]:
        return start_lifecycle(cli, chosen, command, request=request, on_event=heard)

    _run_rollout(cli, start, [i.name for i in chosen], json_output)


def _run_rollout(
    cli: Session,
    start: Callable[[Callable[[Event], None]], Awaitable[RolloutHandle]],
    names: list[str],
    json_output: bool,
) -> None:
    """Start the rollout, show its events as they come, cancel it on Ctrl-C, print the result."""
    import asyncio

    masker = cli.masker()

    async def run(heard: Callable[[Event], None]) -> RolloutResult:
        handle = await start(heard)
        try:
            return await handle.wait()
        except asyncio.CancelledError:  # Ctrl-C: the rollout is cancelled, not abandoned
            handle.cancel(INTERRUPTED)
            _say_cancelling(handle.id)
            return await handle.wait()

    result = _with_progress(names, json_output, masker, lambda heard: run_async(run(heard)))
    _finish(result, json_output, masker)


def _run_remote(api: ApiClient, path: str, body: dict[str, Any], json_output: bool) -> None:
    """Start the rollout on the server, follow its events there with the same live view,
    cancel it through the API on Ctrl-C, print the result the server recorded."""
    from shipyard.client.streams import follow_rollout

    rollout_id = str(api.post(path, body)["id"])

    def follow(heard: Callable[[Event], None]) -> RolloutResult:
        return follow_rollout(
            api,
            rollout_id,
            heard,
            cancel_reason=INTERRUPTED,
            on_cancel=lambda: _say_cancelling(rollout_id),
        )

    # What the server sends is masked already; here there may be no project to mask with.
    result = _with_progress([], json_output, NO_SECRETS, follow)
    _finish(result, json_output, NO_SECRETS)


def _say_cancelling(rollout_id: str) -> None:
    Console(stderr=True, highlight=False).print(
        Text(f"cancelling rollout {rollout_id}: steps in flight finish", "yellow")
    )


def _with_progress(
    names: list[str],
    json_output: bool,
    masker: Masker,
    work: Callable[[Callable[[Event], None]], RolloutResult],
) -> RolloutResult:
    """Run `work`, showing each instance's state from the events it hands over: a live table
    on a terminal, else a line per change (on stderr with --json)."""
    statuses: dict[str, str] = dict.fromkeys(names, "waiting")
    out = console()
    # Without a terminal (CI logs) a line per change, as it happens; with --json, on stderr.
    lines = None if out.is_terminal and not json_output else _ProgressLines(json_output, masker)

    def heard(event: Event) -> None:
        if event.instance is None:
            return
        what = event.result if event.result is not None else event.phase.value
        if lines is not None and statuses.get(event.instance) != what:
            lines.say(event.instance, what)
        statuses[event.instance] = what

    if lines is not None:
        return work(heard)
    from rich.live import Live

    with Live(console=out, transient=True, get_renderable=lambda: _view(statuses)):
        return work(heard)


def _finish(result: RolloutResult, json_output: bool, masker: Masker) -> None:
    _print_result(result, json_output, masker)
    if not result.ok or result.cancelled is not None:
        raise typer.Exit(1)


def _view(statuses: dict[str, str]) -> Table:
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
        settled = {"waiting", "queued", "success", "unchanged"}
        shown = [(n, s) for n, s in shown if s not in settled][:LIVE_ROWS]
    for name, status in shown:
        table.add_row(name, Text(status, STYLE.get(status, "")))
    return table


class _ProgressLines:
    """`20:31:02 greeter@east-1 uploading`: one flushed line per instance state change."""

    def __init__(self, to_stderr: bool, masker: Masker) -> None:
        self.stream = sys.stderr if to_stderr else sys.stdout
        self.masker = masker

    def say(self, instance: str, what: str) -> None:
        at = datetime.now().strftime("%H:%M:%S")
        print(self.masker.shown(f"{at} {instance} {what}"), file=self.stream, flush=True)


def _print_result(result: RolloutResult, json_output: bool, masker: Masker) -> None:
    if json_output:
        print_json(result.to_json(), masker=masker)
        return
    out = console()
    table = Table("instance", "result", "revision", "seconds", "reason", title="rollout")
    for o in result.outcomes:
        table.add_row(
            o.instance,
            Text(o.result, STYLE.get(o.result, "")),
            short(o.revision),
            f"{o.seconds:.1f}" if o.seconds else "",
            host_text(masker, o.reason),
        )
    out.print(table)
    counts = ", ".join(f"{n} {k}" for k, n in result.counts().items())
    if result.cancelled is not None:
        counts += f"; cancelled: {masker.shown(result.cancelled)}"
    out.print(counts, markup=False, highlight=False)
