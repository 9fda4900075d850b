"""What every command shares: the session of the run, and the checks of numbers it is given."""

from __future__ import annotations

import math
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

import typer

if TYPE_CHECKING:
    from shipyard.app.session import Session
    from shipyard.client.http import ApiClient

T = TypeVar("T")


def session(ctx: typer.Context) -> Session:
    """The session `main` made for this run (the project file set by the global option)."""
    from shipyard.app.session import Session

    obj = ctx.find_root().obj
    assert isinstance(obj, Session)
    return obj


def remote(ctx: typer.Context) -> ApiClient | None:
    """The server this command runs through (`--server URL` or $SHIPYARD_SERVER, with the
    token `shipyard login` stored or $SHIPYARD_TOKEN); None to run it here."""
    url = ctx.find_root().meta.get("server")
    if not url:
        return None
    from shipyard.client.http import ApiClient

    client = ApiClient.from_environment(url, session(ctx).env)
    ctx.call_on_close(client.close)
    return client


# Numbers given on the command line: a nonsensical one is refused by the option parser, so the
# message names the option ("Invalid value for '--in-flight': ...") and the exit status is 2.


def whole_number(value: int | None) -> int | None:
    """A count or an id (`--limit`, `--in-flight`, `--before`): a whole number, at least 1."""
    if value is not None and value < 1:
        raise typer.BadParameter(f"must be a whole number of at least 1, got {value}")
    return value


def port_number(value: int | None) -> int | None:
    """A TCP port (`--port`): 1 to 65535."""
    if value is not None and not 1 <= value <= 65535:
        raise typer.BadParameter(f"must be a port from 1 to 65535, got {value}")
    return value


def seconds(value: float | None) -> float | None:
    """A duration (`--timeout`): a finite number of seconds above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a number of seconds above 0, got {value:g}")
    return value


def run_async(work: Coroutine[Any, Any, T]) -> T:
    """Run a use case's coroutine to its end (asyncio is imported only by commands that do)."""
    import asyncio

    # The task that asyncio.run makes hands back nothing: on Python 3.11, asyncio.run's last
    # check of its SIGINT handler builds (and throws away) the handler's repr, which holds
    # the task's and so its result's: a 10,000-row status report took 0.4 s to repr.
    found: list[T] = []

    async def keep() -> None:
        found.append(await work)

    asyncio.run(keep())
    return found[0]
