"""The `shipyard` command: the Typer app, its global options, and errors mapped to exit codes.

Exit codes: 0 success, 1 failure (a host, a deployment, the store),
2 invalid input (config, arguments). With --json an error is one JSON document on stdout,
`{"ok": false, "exit_code": 1 or 2, "error": "...", "problems": [...]}` (problems for a config).
"""

from __future__ import annotations

import gc
import json
import logging
import sys
import traceback
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.text import Text

from shipyard.app.session import Session
from shipyard.errors import ConfigError, Problem, ShipyardError, UsageError
from shipyard.masking import Masker, log_handler

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
    server: str | None = typer.Option(
        None,
        "--server",
        envvar="SHIPYARD_SERVER",
        help="Run the command through this `shipyard serve` (see `shipyard login`).",
    ),
) -> None:
    if isinstance(ctx.obj, Session):  # given by `main`, which masks the errors it prints
        ctx.obj.project_file = project
    else:
        ctx.obj = Session.from_environment(project)
    ctx.meta["server"] = server or None


# Which module defines each command: a command imports only what it needs (the store and
# SQLAlchemy cost about half a second of start-up that `shipyard run` has no use for).
COMMAND_MODULES = {
    **dict.fromkeys(("init", "validate", "show", "plan", "schema"), "project_commands"),
    **dict.fromkeys(
        ("bootstrap", "deploy", "rollback", "disable", "enable", "delete"), "deploy_commands"
    ),
    **dict.fromkeys(("status", "diff", "audit"), "report_commands"),
    **dict.fromkeys(("run", "hosts"), "remote_commands"),
    **dict.fromkeys(("logs", "events"), "event_commands"),
    **dict.fromkeys(("serve", "login"), "serve_command"),
    **dict.fromkeys(("push", "versions"), "push_command"),
    **dict.fromkeys(("users", "tokens"), "account_commands"),
    **dict.fromkeys(("health", "drift"), "health_commands"),
    "artifacts": "artifact_commands",
}
OPTIONS_WITH_VALUE = ("--project", "-p", "--server")


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


def wants_json(argv: list[str]) -> bool:
    """True when the command line asks for JSON: `--json` among the options (not after `--`)."""
    for word in argv:
        if word == "--":
            return False
        if word == "--json":
            return True
    return False


GC_THRESHOLD = 100_000  # allocations between young collections (the default is 700)


def main(argv: list[str] | None = None) -> None:
    """Run the CLI and exit with 0, 1 or 2; with --json every error is JSON on stdout too."""
    words = sys.argv[1:] if argv is None else argv
    # A command builds tens of thousands of long-lived objects (one config per instance) and
    # frees few: the default collector's thresholds (700, 10, 10) run full collections over
    # them again and again (a fifth of `status`'s time at 10,000 instances). Collect less often,
    # as mypy does; cycles are still collected.
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    _register(words)
    cli = Session.from_environment(Path("shipyard.yaml"))
    # Whatever logs meanwhile (asyncio, asyncssh) reaches stderr masked and escaped.
    handler = log_handler(cli.masker_if_loaded)
    logging.getLogger().addHandler(handler)
    try:
        with cli:
            _run(argv, cli, as_json=wants_json(words))
    finally:
        logging.getLogger().removeHandler(handler)


def _run(argv: list[str] | None, cli: Session, *, as_json: bool) -> None:
    def fail(code: int, message: str, *, problems: Sequence[Problem] = ()) -> NoReturn:
        _fail(cli.masker_if_loaded(), as_json, code, message, problems=problems)

    try:
        # Outside standalone mode Typer returns a command's `typer.Exit` code instead of exiting.
        code = app(args=argv, standalone_mode=False, obj=cli)
    except ConfigError as exc:
        fail(
            EXIT_INVALID,
            f"invalid configuration ({len(exc.problems)} problem(s))",
            problems=exc.problems,
        )
    except UsageError as exc:
        fail(EXIT_INVALID, str(exc))
    except ShipyardError as exc:
        fail(EXIT_FAILURE, str(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        fail(EXIT_FAILURE, "aborted")
    except typer.TyperException as exc:  # a usage error: unknown option, bad value, no argument
        show = getattr(exc, "show", None)
        if as_json:
            fail(EXIT_INVALID, exc.format_message())
        if callable(show):
            show()
        else:
            Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(EXIT_INVALID)
    except Exception as exc:
        if not as_json:
            raise
        # A script reading our JSON still gets JSON; the traceback goes to stderr for a report.
        traceback.print_exc()
        fail(EXIT_FAILURE, f"internal error: {type(exc).__name__}: {exc}")
    if isinstance(code, int) and code:
        sys.exit(code)


def _fail(
    masker: Masker, as_json: bool, code: int, message: str, *, problems: Sequence[Problem] = ()
) -> NoReturn:
    """Report an error and exit with `code`: one JSON document on stdout, or lines on stderr.

    An error's text may hold host output or a secret: masked, escaped, never markup.
    """
    if as_json:
        document: dict[str, object] = {"ok": False, "exit_code": code, "error": message}
        if problems:
            document["problems"] = [{"text": str(p), **asdict(p)} for p in problems]
        print(json.dumps(masker.json(document), indent=2, sort_keys=True, default=str), flush=True)
        sys.exit(code)
    err = Console(stderr=True, highlight=False)
    if problems:
        err.print(Text.assemble((masker.shown(message), "bold red"), ":"))
        for problem in problems:
            err.print(Text(f"  {masker.shown(str(problem))}"))
    else:
        label = "error:" if code == EXIT_INVALID else "failed:"
        err.print(Text.assemble((label, "bold red"), " ", masker.shown(message)))
    sys.exit(code)
