"""Commands that report on deployments: status (with blue/green slots), diff, audit."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.columns import BIG, Cell, print_columns
from shipyard.cli.context import remote, run_async, session, whole_number
from shipyard.cli.render import STYLE, JsonFlag, console, host_text, print_json, short
from shipyard.masking import NO_SECRETS, Masker

if TYPE_CHECKING:
    from shipyard.app.queries import (
        AuditPage,
        AuditVerdict,
        InstanceDiff,
        Slots,
        StatusReport,
        StatusRow,
    )
    from shipyard.client.http import ApiClient

STATUS_PAGE = 10_000  # rows asked of a server at once


@app.command()
def status(
    ctx: typer.Context,
    site: Annotated[str | None, typer.Option(help="Only this site.")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every instance, not only those needing attention.")
    ] = False,
    json_output: JsonFlag = False,
) -> None:
    """Counts per site and status, then the instances needing attention (failed, stale, in
    progress), or every instance with --all; --json gives every instance."""
    from shipyard.app.queries import status as status_of

    client = remote(ctx)
    if client is not None:
        masker, report = NO_SECRETS, remote_status(client, site=site)
    else:
        cli = session(ctx)
        masker = cli.masker()
        report = run_async(status_of(cli, site=site))
    if json_output:
        print_json(report.to_json(), masker=masker)
        return
    out = console()
    out.print(_counts_table(report))
    rows = list(report.rows) if every else report.attention
    if len(rows) > BIG:
        if not every:
            out.print(Text("needing attention", "italic"))
        print_columns(out, ROW_HEADERS, [_row_cells(row, masker) for row in rows])
    elif rows:
        out.print(_rows_table(rows, masker, title=None if every else "needing attention"))
    elif report.rows:
        out.print(Text(f"all {len(report.rows)} instance(s) current", "green"))
    hidden = len(report.rows) - len(rows)
    if hidden:
        out.print(Text(f"{hidden} current instance(s) not shown (--all shows them)", "dim"))


def remote_status(client: ApiClient, *, site: str | None) -> StatusReport:
    """The status a server reports (slots included, as here), every page of it."""
    from shipyard.app.queries import StatusReport

    rows: list[dict[str, object]] = []
    after: str | None = None
    while True:
        params = {"site": site, "slots": "true", "limit": STATUS_PAGE, "after": after}
        page = client.get("/api/status", params)
        rows.extend(page["rows"])
        after = page["next_after"]
        if after is None:
            return StatusReport.from_json(rows)


def _counts_table(report: StatusReport) -> Table:
    statuses = sorted({s for per_site in report.counts.values() for s in per_site})
    table = Table("site", *statuses, "stale", "instances", title="status", title_justify="left")
    for site, per_site in sorted(report.counts.items()):
        cells = [
            Text(str(per_site[s]), STYLE.get(s, "")) if s in per_site else Text("-", "dim")
            for s in statuses
        ]
        stale = report.stale.get(site, 0)
        table.add_row(
            site,
            *cells,
            Text(str(stale), "yellow") if stale else Text("0", "green"),
            str(sum(per_site.values())),
        )
    return table


ROW_HEADERS = (
    "instance", "site", "host", "status", "deployed", "stale", "slots", "last deployment",
)  # fmt: skip


def _row_cells(row: StatusRow, masker: Masker) -> list[Cell]:
    shown = masker.shown
    slots = _slots_text(row.slots, masker)
    return [
        (shown(row.instance), ""),
        (shown(row.site), ""),
        (shown(row.host), ""),
        (shown(row.status), STYLE.get(row.status, "")),
        (short(row.deployed_revision), ""),
        ("stale", "yellow") if row.stale else ("current", "green"),
        (slots.plain, str(slots.style)),
        (shown(_last_summary(row)), ""),
    ]


def _last_summary(row: StatusRow) -> str:
    last = row.last
    if last is None:
        return ""
    summary = f"{last.status} by {last.actor} at {last.started_at.isoformat(timespec='seconds')}"
    if last.error:
        summary += f": {last.error.splitlines()[0]}"
    return summary


def _rows_table(rows: list[StatusRow], masker: Masker, *, title: str | None) -> Table:
    table = Table(*ROW_HEADERS, title=title, title_justify="left")
    for row in rows:
        summary = _last_summary(row)
        table.add_row(
            host_text(masker, row.instance),
            host_text(masker, row.site),
            host_text(masker, row.host),
            host_text(masker, row.status, STYLE.get(row.status, "")),
            short(row.deployed_revision),
            Text("stale", "yellow") if row.stale else Text("current", "green"),
            _slots_text(row.slots, masker),
            host_text(masker, summary),
        )
    return table


def _slots_text(slots: Slots | None, masker: Masker) -> Text:
    if slots is None:
        return Text("")
    if slots.error is not None:
        return host_text(masker, f"unknown: {slots.error}", "red")
    text = host_text(masker, f"{slots.live} live" if slots.live else "none live", "green")
    if slots.draining:
        text.append(host_text(masker, f", {slots.draining} draining", "yellow"))
    return text


@app.command()
def diff(
    ctx: typer.Context,
    names: Annotated[list[str] | None, typer.Argument(help="Services or instances.")] = None,
    json_output: JsonFlag = False,
) -> None:
    """The deployed snapshot against the template-derived config (secrets masked)."""
    from shipyard.app.queries import diff as diff_of
    from shipyard.cli.render import print_diff

    client = remote(ctx)
    if client is not None:
        masker, diffs = NO_SECRETS, remote_diff(client, names)
    else:
        cli = session(ctx)
        masker = cli.masker()
        diffs = diff_of(cli, names)
    if json_output:
        print_json({d.instance: d.to_json() for d in diffs}, masker=masker)
        return
    out = console()
    for d in diffs:
        print_diff(out, d.instance, d.entries, masker=masker)


def remote_diff(client: ApiClient, names: list[str] | None) -> list[InstanceDiff]:
    from shipyard.app.queries import InstanceDiff

    found = client.get("/api/diff", {"instances": names or None})
    return [InstanceDiff.from_json(d["instance"], d["entries"]) for d in found["diffs"]]


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
    from shipyard.app.queries import audit as audit_of

    client = remote(ctx)
    if client is not None:
        masker = NO_SECRETS
        page = remote_audit(client, instance=instance, since=since, limit=limit, before=before)
    else:
        cli = session(ctx)
        masker = cli.masker()
        page = audit_of(cli, instance=instance, since=since, limit=limit, before=before)
    if json_output:
        print_json(page.to_json(), masker=masker)
        return
    table = Table("id", "at", "actor", "action", "target", "result")
    for e in page.entries:
        table.add_row(
            str(e.id),
            e.at.isoformat(timespec="seconds"),
            *(host_text(masker, text) for text in (e.actor, e.action, e.target, e.result)),
        )
    out = console()
    out.print(table)
    if page.more:
        more = ["shipyard audit", f"--before {page.oldest_id}", f"--limit {limit}"]
        if instance is not None:
            more.append(f"--instance {instance}")
        if since is not None:
            more.append(f"--since {since:%Y-%m-%dT%H:%M:%S}")
        out.print(Text(f"older entries may follow: {' '.join(more)}", "dim"))


def remote_audit(
    client: ApiClient,
    *,
    instance: str | None,
    since: datetime | None,
    limit: int,
    before: int | None,
) -> AuditPage:
    from shipyard.app.queries import AuditPage

    params = {
        "target": instance,
        "since": since.isoformat() if since is not None else None,
        "limit": limit,
        "before": before,
    }
    found = client.get("/api/audit", params)
    return AuditPage.from_json(found["entries"], more=bool(found["more"]))


def remote_verdict(client: ApiClient) -> AuditVerdict:
    from shipyard.app.queries import AuditVerdict

    return AuditVerdict.from_json(client.get("/api/audit/verify"))


@audit_app.command("verify")
def audit_verify(ctx: typer.Context, json_output: JsonFlag = False) -> None:
    """Check the audit log's hash chain; exit 1 naming the first row where it breaks."""
    from shipyard.app.queries import audit_verify as verify

    client = remote(ctx)
    if client is not None:
        masker, verdict = NO_SECRETS, remote_verdict(client)
    else:
        cli = session(ctx)
        verdict = verify(cli)
        masker = cli.masker()
    if json_output:
        print_json(verdict.to_json(), masker=masker)
    elif verdict.whole:
        line = f"audit log whole: {verdict.count} row(s), head {verdict.head}"
        console().print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        console().print(
            f"audit log broken at row {verdict.broken_row}: {verdict.broken_reason}"
            f" ({verdict.count} row(s) before it hold)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if not verdict.whole:
        raise typer.Exit(1)
