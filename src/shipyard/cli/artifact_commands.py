"""`shipyard artifacts deploy | status | retry`: system-wide artifacts and their site matrix."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import remote, run_async, session
from shipyard.cli.render import STYLE, JsonFlag, console, host_text, print_json
from shipyard.masking import NO_SECRETS, Masker

if TYPE_CHECKING:
    from shipyard.app.artifacts import ArtifactMatrix, ArtifactReport

artifacts_app = typer.Typer(
    help="System-wide artifacts: push them to sites, see the matrix, retry what failed.",
    no_args_is_help=True,
)
app.add_typer(artifacts_app, name="artifacts")

Names = Annotated[list[str] | None, typer.Argument(help="Artifacts (default: all).")]
SiteOption = Annotated[str | None, typer.Option("--site", help="Only this site.")]
CELL_STYLE = {**STYLE, "stale": "yellow", "not deployed": "yellow", "unchanged": "green"}


@artifacts_app.command("deploy")
def deploy_command(
    ctx: typer.Context,
    names: Names = None,
    site: SiteOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would change.")] = False,
    json_output: JsonFlag = False,
) -> None:
    """Push the artifacts that changed to every host of their sites (atomically per host)."""
    api = remote(ctx)
    if api is not None:
        body = {"artifacts": names or [], "site": site, "dry_run": dry_run}
        _show_report(_remote_report(api.post("/api/artifacts/deploy", body)), json_output)
        return
    from shipyard.app.artifacts import deploy_artifacts

    cli = session(ctx)
    report = run_async(deploy_artifacts(cli, names, site=site, dry_run=dry_run))
    _show_report(report, json_output, cli.masker())


@artifacts_app.command("retry")
def retry_command(
    ctx: typer.Context,
    names: Names = None,
    site: SiteOption = None,
    json_output: JsonFlag = False,
) -> None:
    """Push again only where the last attempt failed (e.g. a site that was offline)."""
    api = remote(ctx)
    if api is not None:
        body = {"artifacts": names or [], "site": site}
        _show_report(_remote_report(api.post("/api/artifacts/retry", body)), json_output)
        return
    from shipyard.app.artifacts import retry_artifacts

    cli = session(ctx)
    report = run_async(retry_artifacts(cli, names, site=site))
    _show_report(report, json_output, cli.masker())


@artifacts_app.command("status")
def status_command(
    ctx: typer.Context, site: SiteOption = None, json_output: JsonFlag = False
) -> None:
    """The matrix: artifacts x sites, each cell's state with its hosts' counts."""
    from shipyard.app.artifacts import ArtifactMatrix, artifact_status

    api = remote(ctx)
    masker: Masker = NO_SECRETS
    if api is not None:
        found = ArtifactMatrix.from_json(api.get("/api/artifacts", {"site": site}))
    else:
        cli = session(ctx)
        found = artifact_status(cli, site=site)
        masker = cli.masker()
    _show_matrix(found, json_output, masker)


def _remote_report(value: Any) -> ArtifactReport:
    from shipyard.app.artifacts import ArtifactReport

    return ArtifactReport.from_json(value)


def _show_report(report: ArtifactReport, json_output: bool, masker: Masker = NO_SECRETS) -> None:
    if json_output:
        print_json(report.to_json(), masker=masker)
    else:
        table = Table("artifact", "site", "host", "result", "version", "reason")
        for r in report.results:
            table.add_row(
                host_text(masker, r.artifact), host_text(masker, r.site),
                host_text(masker, r.host), Text(r.result, CELL_STYLE.get(r.result, "")),
                r.version[:12], host_text(masker, r.reason),
            )  # fmt: skip
        out = console()
        out.print(table)
        if not report.results:
            out.print("nothing to push")
    if report.failed:
        raise typer.Exit(1)


def _show_matrix(found: ArtifactMatrix, json_output: bool, masker: Masker) -> None:
    if json_output:
        print_json(found.to_json(), masker=masker)
    else:
        sites = list(dict.fromkeys(c.site for c in found.cells))
        names = list(dict.fromkeys(c.artifact for c in found.cells))
        by = {(c.artifact, c.site): c for c in found.cells}
        table = Table("artifact", *sites)
        for name in names:
            row: list[Text | str] = [host_text(masker, name)]
            for site in sites:
                cell = by.get((name, site))
                if cell is None:
                    row.append("")
                    continue
                counts = ", ".join(f"{n} {s}" for s, n in cell.counts().items())
                row.append(Text(f"{cell.state} ({counts})", CELL_STYLE.get(cell.state, "")))
            table.add_row(*row)
        out = console()
        out.print(table)
        for cell in found.cells:
            for host, reason in cell.reasons.items():
                out.print(Text.assemble(
                    host_text(masker, f"{cell.artifact} at {cell.site} on {host}", "bold"),
                    ": ", host_text(masker, reason, "red"),
                ))  # fmt: skip
    if found.failed:
        raise typer.Exit(1)
