"""`shipyard push`: upload the project directory to a server as a new config version, and
`shipyard versions`: list them or diff two, through the server's API."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from shipyard.cli.app import app
from shipyard.cli.context import remote, session, whole_number
from shipyard.cli.render import JsonFlag, console, host_text, print_json
from shipyard.errors import UsageError

if TYPE_CHECKING:
    from shipyard.client.http import ApiClient


def _server(ctx: typer.Context, command: str) -> ApiClient:
    client = remote(ctx)
    if client is None:
        raise UsageError(
            f"shipyard {command} needs a server: give --server URL or $SHIPYARD_SERVER"
        )
    return client


@app.command(name="push")
def push_command(
    ctx: typer.Context,
    message: Annotated[str, typer.Option("--message", "-m", help="Why: kept with it.")] = "",
    json_output: JsonFlag = False,
) -> None:
    """Upload the project's directory (`--project`'s) to the server: validated there, refused
    with every problem if invalid, else published and served as a new config version."""
    from shipyard.app.projectfiles import read_project
    from shipyard.app.versions import state_files

    cli = session(ctx)
    cli.load()  # an invalid project is refused here, with every problem, before any upload
    client = _server(ctx, "push")
    files = read_project(cli.project_file.absolute().parent, state_files(cli))
    body = {p: base64.b64encode(c).decode("ascii") for p, c in files.items()}
    answer: dict[str, Any] = client.post("/api/versions", {"files": body, "message": message})
    if json_output:
        print_json(answer, masker=cli.masker_if_loaded())
        return
    version = answer["version"]
    what = "published" if answer["created"] else "unchanged, already"
    console().print(
        Text(f"version {version['id']} {what} ({len(version['files'])} files, "
             f"{version['hash'][:12]}); the server serves version {answer['serving']}")
    )  # fmt: skip


versions_app = typer.Typer(help="The server's config versions.", no_args_is_help=False)
app.add_typer(versions_app, name="versions")


@versions_app.callback(invoke_without_command=True)
def versions_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many.", callback=whole_number)] = 20,
    json_output: JsonFlag = False,
) -> None:
    """List the server's config versions, the newest first."""
    if ctx.invoked_subcommand is not None:
        return
    cli = session(ctx)
    page: dict[str, Any] = _server(ctx, "versions").get("/api/versions", {"limit": limit})
    if json_output:
        print_json(page, masker=cli.masker_if_loaded())
        return
    out = console()
    for v in page["versions"]:
        mark = "*" if v["id"] == page["serving"] else " "
        line = f"{mark} {v['id']:>4}  {v['published_at'][:19]}  {v['source']:<7} "
        masker = cli.masker_if_loaded()
        out.print(host_text(masker, f"{line}{v['published_by']}  {v['message']}".rstrip()))


@versions_app.command(name="diff")
def versions_diff_command(
    ctx: typer.Context,
    old: Annotated[int, typer.Argument(help="The older version.")],
    new: Annotated[int, typer.Argument(help="The newer version.")],
    json_output: JsonFlag = False,
) -> None:
    """What changes from version OLD to NEW: files, and instances whose revision changes."""
    cli = session(ctx)
    shown: dict[str, Any] = _server(ctx, "versions diff").get(f"/api/versions/{old}/diff/{new}")
    if json_output:
        print_json(shown, masker=cli.masker_if_loaded())
        return
    out, masker = console(), cli.masker_if_loaded()
    for f in shown["files"]:
        out.print(host_text(masker, f"{f['change']}: {f['path']}", "bold"))
        if f["unified"]:
            out.print(host_text(masker, f["unified"].rstrip("\n")))
    for i in shown["instances"]:
        old_rev, new_rev = (i["old_revision"] or "-")[:12], (i["new_revision"] or "-")[:12]
        out.print(
            host_text(masker, f"{i['change']}: {i['instance']} {old_rev} -> {new_rev}", "bold")
        )
        for e in i["entries"]:
            out.print(host_text(masker, f"  {e['kind']} {e['path']}"))
