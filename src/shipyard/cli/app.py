"""The `shipyard` command: the Typer app, its global options, and errors mapped to exit codes.

Exit codes: 0 success, 1 failure (a host, a deployment, the store),
2 invalid input (config, arguments).
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console

from shipyard.cli.context import CliState
from shipyard.errors import ConfigError, ShipyardError, UsageError

EXIT_FAILURE = 1
EXIT_INVALID = 2

app = typer.Typer(
    name="shipyard",
    help="Describe a fleet and its services once; flatten, diff and deploy them over SSH.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _options(
    ctx: typer.Context,
    project: Path = typer.Option(
        Path("shipyard.yaml"),
        "--project",
        "-p",
        envvar="SHIPYARD_PROJECT",
        help="The project file.",
    ),
) -> None:
    ctx.obj = CliState(project_file=project)


def _register() -> None:
    # Each module adds its commands to `app`; importing them here keeps app.py about the app.
    from shipyard.cli import (  # noqa: F401
        deploy_commands,
        project_commands,
        remote_commands,
        report_commands,
    )


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with 0, 1 or 2."""
    _register()
    err = Console(stderr=True)
    try:
        # Outside standalone mode Typer returns a command's `typer.Exit` code instead of exiting.
        code = app(args=argv, standalone_mode=False)
    except ConfigError as exc:
        err.print(f"[bold red]invalid configuration[/] ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            err.print(f"  {problem}", markup=False, highlight=False)
        sys.exit(EXIT_INVALID)
    except UsageError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_INVALID)
    except ShipyardError as exc:
        err.print(f"[bold red]failed:[/] {exc}", highlight=False)
        sys.exit(EXIT_FAILURE)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(EXIT_FAILURE)
    except typer.TyperException as exc:  # a usage error: unknown option, missing argument
        show = getattr(exc, "show", None)
        if callable(show):
            show()
        else:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_INVALID)
    if isinstance(code, int) and code:
        sys.exit(code)
