"""`shipyard serve`: the server (FastAPI on uvicorn) for the project; `shipyard login`: keep a
token for one.

SIGTERM or Ctrl-C: no new rollout starts, running ones are cancelled (steps in flight finish
within the grace period, the rest are skipped or marked interrupted), streams end, the store is
closed. The admin token is made at the first start and printed once, to stderr.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shipyard.cli.app import app
from shipyard.cli.context import seconds, session, whole_number
from shipyard.errors import UsageError

if TYPE_CHECKING:
    from shipyard.app.session import Session
    from shipyard.server.state import ServerState


@app.command()
def serve(
    ctx: typer.Context,
    listen: Annotated[
        str | None, typer.Option("--listen", help="ADDR:PORT (default 127.0.0.1:8700).")
    ] = None,
    settings_file: Annotated[
        Path | None, typer.Option("--settings", help="A TOML settings file.", dir_okay=False)
    ] = None,
    max_rollouts: Annotated[
        int | None,
        typer.Option("--max-rollouts", help="Rollouts that run at once.", callback=whole_number),
    ] = None,
    shutdown_grace: Annotated[
        float | None,
        typer.Option(
            "--shutdown-grace", help="Seconds steps in flight get on SIGTERM.", callback=seconds
        ),
    ] = None,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Ask for no token (loopback addresses only).")
    ] = False,
    event_retention_days: Annotated[
        int | None,
        typer.Option(
            "--event-retention-days",
            help="Days events are kept (default 30); older ones are purged daily.",
            callback=whole_number,
        ),
    ] = None,
    init_admin: Annotated[
        str | None,
        typer.Option(
            "--init-admin",
            metavar="NAME",
            help="On a store with no user yet: make NAME its first admin, with a password"
            " asked for (or read from standard input), before serving.",
        ),
    ] = None,
) -> None:
    """Serve the project's REST API, live events and metrics."""
    import os
    import sys

    from shipyard.server.run import serve as run_server
    from shipyard.server.settings import load_settings

    cli = session(ctx)
    flags = {
        "listen": listen,
        "project": cli.project_file,
        "max_rollouts": max_rollouts,
        "shutdown_grace": shutdown_grace,
        "no_auth": no_auth or None,
        "event_retention_days": event_retention_days,
    }
    settings = load_settings(flags, os.environ, settings_file)
    if settings.no_auth and not settings.loopback:
        raise UsageError(
            f"--no-auth on {settings.listen}: a server without tokens may only listen on a"
            " loopback address (127.0.0.1, ::1)"
        )

    if init_admin is not None:
        _first_admin(cli, init_admin)

    def started(state: ServerState) -> None:
        if state.admin_token is not None:
            print(
                "the admin token (shown this once; keep it, the server stores only its hash):\n"
                f"  {state.admin_token}",
                file=sys.stderr,
                flush=True,
            )
        print(f"shipyard serving {settings.project} on http://{settings.listen}", file=sys.stderr)

    run_server(settings, started)


@app.command()
def login(
    ctx: typer.Context,
    url: Annotated[str, typer.Argument(help="The server: http://ADDR:PORT.")],
    token: Annotated[
        str | None,
        typer.Option("--token", help="The token (asked for when not given; $SHIPYARD_TOKEN)."),
    ] = None,
) -> None:
    """Check a token against the server at URL and keep it (file mode 600) for --server URL."""
    from shipyard.client.credentials import store_token
    from shipyard.client.http import ApiClient

    env = session(ctx).env
    given = token or env.get("SHIPYARD_TOKEN") or typer.prompt("token", hide_input=True)
    with ApiClient(url, given.strip()) as client:
        who = client.get("/api/whoami")
        path = store_token(client.url, given.strip(), env)
    roles = ", ".join(who["roles"]) or "no role"
    print(f"logged in to {client.url} as {who['name']} ({roles}); token kept in {path}")


def _first_admin(cli: Session, name: str) -> None:
    """`serve --init-admin NAME`: the store's first user, an admin with a password."""
    import sys

    from shipyard.app import accounts

    if cli.store.users():
        raise UsageError(
            "--init-admin: the store has users already; add more with `shipyard users add`"
        )
    if sys.stdin.isatty():
        password = typer.prompt(f"password for {name}", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    accounts.add_user(cli, name, roles=["admin"], password=password)
    cli.close()
    print(f"{name} is the first admin: sign in at /login", file=sys.stderr, flush=True)
