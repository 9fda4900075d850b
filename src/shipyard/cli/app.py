"""The `shipyard` command: the Typer app, its global options, and errors mapped to exit codes.

Exit codes: 0 success, 1 failure (a host, a deployment, the store),
2 invalid input (config, arguments).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from shipyard.cli.context import CliState
from shipyard.errors import ConfigError, ShipyardError, UsageError
from shipyard.masking import log_handler

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
    if isinstance(ctx.obj, CliState):  # given by `main`, which masks the errors it prints
        ctx.obj.project_file = project
    else:
        ctx.obj = CliState(project_file=project)


# Which module defines each command: a command imports only what it needs (the store and
# SQLAlchemy cost about half a second of start-up that `shipyard run` has no use for).
COMMAND_MODULES = {
    **dict.fromkeys(("init", "validate", "show", "plan", "schema"), "project_commands"),
    **dict.fromkeys(("bootstrap", "deploy", "rollback"), "deploy_commands"),
    **dict.fromkeys(("status", "diff", "audit"), "report_commands"),
    **dict.fromkeys(("run", "hosts"), "remote_commands"),
}
OPTIONS_WITH_VALUE = ("--project", "-p")


def _register(argv: list[str]) -> None:
    """Import the module of the command in `argv`, or all of them (for help and errors)."""
    import importlib

    words = iter(argv)
    command = None
    for word in words:
        if word in OPTIONS_WITH_VALUE:
            next(words, None)
        elif not word.startswith("-"):
            command = word
            break
    modules = (
        [COMMAND_MODULES[command]] if command in COMMAND_MODULES else set(COMMAND_MODULES.values())
    )
    for module in sorted(modules):
        importlib.import_module(f"shipyard.cli.{module}")


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with 0, 1 or 2."""
    _register(sys.argv[1:] if argv is None else argv)
    cli = CliState(project_file=Path("shipyard.yaml"))
    # Whatever logs meanwhile (asyncio, asyncssh) reaches stderr masked and escaped.
    handler = log_handler(cli.masker_if_loaded)
    logging.getLogger().addHandler(handler)
    try:
        _run(argv, cli)
    finally:
        logging.getLogger().removeHandler(handler)


def _run(argv: list[str] | None, cli: CliState) -> None:
    err = Console(stderr=True, highlight=False)

    def shown(label: str, exc: BaseException) -> Text:
        # An error's text may hold host output or a secret: masked, escaped, never markup.
        return Text.assemble((label, "bold red"), " ", cli.masker_if_loaded().shown(str(exc)))

    try:
        # Outside standalone mode Typer returns a command's `typer.Exit` code instead of exiting.
        code = app(args=argv, standalone_mode=False, obj=cli)
    except ConfigError as exc:
        err.print(f"[bold red]invalid configuration[/] ({len(exc.problems)} problem(s)):")
        for problem in exc.problems:
            err.print(Text(f"  {cli.masker_if_loaded().shown(str(problem))}"))
        sys.exit(EXIT_INVALID)
    except UsageError as exc:
        err.print(shown("error:", exc))
        sys.exit(EXIT_INVALID)
    except ShipyardError as exc:
        err.print(shown("failed:", exc))
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
