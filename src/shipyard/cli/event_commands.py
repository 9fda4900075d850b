"""Commands that read what happened: `shipyard logs` (a deployment's step output) and
`shipyard events` (the event stream), each of which can follow another process's rollout."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, Annotated

import typer
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import remote, session, whole_number
from shipyard.cli.render import STYLE, JsonFlag, console, host_text, print_json
from shipyard.errors import UsageError
from shipyard.masking import NO_SECRETS, Masker

if TYPE_CHECKING:
    from rich.console import Console

    from shipyard.app.logs import StepOutput
    from shipyard.events import Event

Follow = Annotated[
    bool, typer.Option("--follow", "-f", help="Keep reading as more is stored (Ctrl-C stops).")
]


@app.command()
def logs(
    ctx: typer.Context,
    deployment: Annotated[str, typer.Argument(help="A deployment id (see status or events).")],
    follow: Follow = False,
    json_output: JsonFlag = False,
) -> None:
    """Print the host output of each step of DEPLOYMENT; with --follow, until it is over."""
    from shipyard.app.logs import DeploymentLog

    api = remote(ctx)
    if api is not None:
        from shipyard.client import streams

        masker = NO_SECRETS  # what the server sends is masked already
        read = partial(streams.deployment_log, api, deployment)
        followed = partial(streams.follow_log, api, deployment)
    else:
        from shipyard.app.logs import deployment_log, follow_log

        cli = session(ctx)
        masker = cli.masker()
        read = partial(deployment_log, cli, deployment)
        followed = partial(follow_log, cli, deployment)
    if not follow:
        log = read()
        if json_output:
            print_json(log.to_json(), masker=masker)
            return
        out = console()
        _print_header(out, log.instance, log.revision, masker)
        for step in log.steps:
            _print_step(out, step, masker)
        _print_end(out, log.status, log.error, masker)
        return
    out = console()
    try:
        for item in followed():
            if isinstance(item, DeploymentLog):
                if json_output:
                    _json_line({"status": item.status, "error": item.error}, masker)
                else:
                    _print_end(out, item.status, item.error, masker)
            elif json_output:
                _json_line(item.to_json(), masker)
            else:
                _print_step(out, item, masker)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _print_header(out: Console, instance: str, revision: str, masker: Masker) -> None:
    out.print(Text.assemble(host_text(masker, instance, "bold"), f"  revision {revision[:12]}"))


def _print_step(out: Console, step: StepOutput, masker: Masker) -> None:
    status = "" if step.exit_status is None else f" (exit {step.exit_status})"
    style = "green" if step.exit_status in (None, 0) else "red"
    at = step.at.strftime("%H:%M:%S")
    out.print(
        Text.assemble(f"{at} ", host_text(masker, f"{step.step} on {step.host}", style), status)
    )
    for line in step.output.splitlines():
        out.print(Text.assemble("  | ", host_text(masker, line)), soft_wrap=True)


def _print_end(out: Console, status: str, error: str | None, masker: Masker) -> None:
    line = Text.assemble("deployment ", host_text(masker, status, STYLE.get(status, "")))
    if error:
        line.append(": ")
        line.append(host_text(masker, error.splitlines()[0]))
    out.print(line)


events_app = typer.Typer()  # `events` prints the stream or a page of the log; `events purge`
app.add_typer(events_app, name="events")

Word = Annotated[str | None, typer.Option(help="Only events of this site.")]


@events_app.callback(invoke_without_command=True)
def events(
    ctx: typer.Context,
    rollout: Annotated[str | None, typer.Option("--rollout", help="Only this rollout.")] = None,
    after: Annotated[
        int | None,
        typer.Option(help="Only events after the one with this id.", callback=whole_number),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="At most this many (without --follow).", callback=whole_number),
    ] = None,
    follow: Follow = False,
    site: Word = None,
    search: Annotated[
        str | None, typer.Option(help="Only events whose message or source has all these words.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events from this time on: ISO, or 30m, 2h, 3d ago.")
    ] = None,
    severity: Annotated[
        str | None, typer.Option(help="Only events at least this grave: info, warning, error.")
    ] = None,
    source: Annotated[
        str | None, typer.Option(help='Only events of this source ("host h1", "instance x").')
    ] = None,
    before: Annotated[
        int | None,
        typer.Option(help="Only events older than this id (the next page).", callback=whole_number),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Print the event stream, oldest first; --follow keeps reading (to its end, with --rollout).

    With --site, --search, --since, --severity, --source or --before: the site event log
    instead, newest first, 500 a page (--before ID pages back). With --json and --follow, one
    JSON object a line.
    """
    if ctx.invoked_subcommand is not None:
        return
    log_options = {
        "--site": site, "--search": search, "--since": since, "--severity": severity,
        "--source": source, "--before": before,
    }  # fmt: skip
    chosen_log = [name for name, value in log_options.items() if value is not None]
    if chosen_log:
        stream_options = {"--rollout": rollout, "--after": after, "--follow": follow or None}
        mixed = [name for name, value in stream_options.items() if value is not None]
        if mixed:
            raise UsageError(
                f"{', '.join(mixed)} reads the event stream and {', '.join(chosen_log)} pages"
                " the site event log: give one or the other"
            )
        _print_log(ctx, site, search, since, severity, source, before, limit, json_output)
        return
    api = remote(ctx)
    found: Iterable[Event]
    if api is not None:
        from shipyard.client import streams

        masker = NO_SECRETS  # what the server sends is masked already
        if follow:
            found = streams.events(api, rollout=rollout, after=after or 0)
        else:
            found = streams.stored_events(api, rollout=rollout, after=after or 0, limit=limit)
    else:
        from shipyard.app.logs import events as events_of

        cli = session(ctx)
        masker = cli.masker()
        found = events_of(
            cli,
            after_id=after or 0,
            rollout_id=rollout,
            follow=follow,
            limit=None if follow else limit,
        )
    if not follow:
        chosen = list(found)
        if json_output:
            print_json([e.to_json() for e in chosen], masker=masker)
            return
        out = console()
        for event in chosen:
            _print_event(out, event, masker)
        return
    out = console()
    try:
        for event in found:
            if json_output:
                _json_line(event.to_json(), masker)
            else:
                _print_event(out, event, masker)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _print_log(
    ctx: typer.Context,
    site: str | None,
    search: str | None,
    since: str | None,
    severity: str | None,
    source: str | None,
    before: int | None,
    limit: int | None,
    json_output: bool,
) -> None:
    """A page of the site event log, newest first, and how to ask for the next one."""
    from datetime import UTC, datetime

    from shipyard.app.eventlog import PAGE, event_log, parse_severity, parse_when

    level = None if severity is None else parse_severity(severity)
    start = None if since is None else parse_when(since, now=datetime.now(UTC))
    size = limit or PAGE
    api = remote(ctx)
    if api is not None:
        from shipyard.client import streams

        masker = NO_SECRETS  # what the server sends is masked already
        page = streams.event_log(
            api, site=site, severity=level, since=start, source=source, search=search,
            before=before, limit=size,
        )  # fmt: skip
    else:
        cli = session(ctx)
        masker = cli.masker()
        page = event_log(
            cli, site=site, severity=level, since=start, source=source, search=search,
            before=before, limit=size,
        )  # fmt: skip
    if json_output:
        print_json(page.to_json(), masker=masker)
        return
    out = console()
    for event in page.events:
        _print_logged(out, event, masker)
    if page.next_before is not None:
        out.print(Text(f"older events: add --before {page.next_before}", "dim"))


SEVERITY_STYLE = {"error": "red", "warning": "yellow", "info": ""}


def _print_logged(out: Console, event: Event, masker: Masker) -> None:
    at = event.at.strftime("%Y-%m-%d %H:%M:%S")
    level = event.severity.value
    line = Text.assemble(
        f"{event.id:>8} {at} ",
        (f"{level:<7}", SEVERITY_STYLE[level]),
        " ",
        host_text(masker, event.site or "-", "bold"),
        " ",
        host_text(masker, event.source, "bold"),
        " ",
        host_text(masker, event.message),
    )
    out.print(line, soft_wrap=True)


@events_app.command("purge")
def purge(
    ctx: typer.Context,
    days: Annotated[
        int | None,
        typer.Option(
            help="Delete events older than this many days (default 30).", callback=whole_number
        ),
    ] = None,
    json_output: JsonFlag = False,
) -> None:
    """Delete the events older than the retention, a bounded batch a transaction (audited)."""
    api = remote(ctx)
    if api is not None:
        masker = NO_SECRETS
        found = api.post("/api/events/purge", {"days": days} if days is not None else {})
        deleted, kept = int(found["deleted"]), int(found["days"])
    else:
        from shipyard.app.eventlog import RETENTION_DAYS, purge_events

        cli = session(ctx)
        masker = cli.masker()
        kept = days or RETENTION_DAYS
        deleted = purge_events(cli, days=kept)
    if json_output:
        print_json({"deleted": deleted, "days": kept}, masker=masker)
        return
    console().print(f"purged {deleted} event(s) older than {kept} day(s)", markup=False)


def _print_event(out: Console, event: Event, masker: Masker) -> None:
    at = event.at.strftime("%H:%M:%S")
    what = event.phase.value if event.result is None else f"{event.phase.value} {event.result}"
    subject = event.instance or f"rollout {event.rollout_id}"
    line = Text.assemble(
        f"{event.id:>6} {at} ",
        host_text(masker, subject, "bold"),
        " ",
        host_text(masker, what, STYLE.get(event.result or "", "")),
    )
    if event.detail:
        line.append(" ")
        line.append(host_text(masker, event.detail, "dim"))
    out.print(line, soft_wrap=True)


def _json_line(value: object, masker: Masker) -> None:
    print(json.dumps(masker.json(value), sort_keys=True, default=str), flush=True)
