"""The server's settings: flags over $SHIPYARD_* over a settings file over the defaults.

The settings file is TOML with the same names as the flags (`listen = "127.0.0.1:8700"`,
`max_rollouts = 4`); environment variables are the names in capitals after `SHIPYARD_`
(`SHIPYARD_LISTEN`, `SHIPYARD_MAX_ROLLOUTS`). Every source is checked the same way, and a
wrong value names where it came from.
"""

from __future__ import annotations

import ipaddress
import socket
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shipyard.errors import UsageError

DEFAULT_PORT = 8700
ENV_PREFIX = "SHIPYARD_"


class Settings(BaseModel):
    """What `shipyard serve` runs with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    listen: str = Field(f"127.0.0.1:{DEFAULT_PORT}", description="ADDR:PORT to listen on.")
    project: Path = Field(Path("shipyard.yaml"), description="The project file the server serves.")
    max_rollouts: int = Field(4, ge=1, le=1000, description="Rollouts that run at once.")
    shutdown_grace: float = Field(
        30.0, ge=0, description="Seconds host steps in flight get to finish on SIGTERM."
    )
    sse_buffer: int = Field(
        10_000, ge=10, description="Events kept for a slow SSE client before it must resume."
    )
    webhook_timeout: float = Field(10.0, gt=0, description="Seconds one delivery may take.")
    webhook_give_up: float = Field(
        3600.0, gt=0, description="Seconds a failing delivery is retried for."
    )
    no_auth: bool = Field(False, description="No token asked (refused unless on loopback).")
    login_failures: int = Field(
        5, ge=1, le=1000, description="Failed sign-ins of one account that lock it for a while."
    )
    login_address_failures: int = Field(
        20, ge=1, le=100_000, description="Failed sign-ins from one address that lock it out."
    )
    login_window: float = Field(900.0, gt=0, description="Seconds failed sign-ins count for.")
    login_lockout: float = Field(900.0, gt=0, description="Seconds a lockout lasts.")
    session_idle: float = Field(3600.0, gt=0, description="Seconds a browser session may idle.")
    session_lifetime: float = Field(
        43_200.0, gt=0, description="Seconds a browser session lasts at most."
    )
    health_interval: float = Field(
        30.0, ge=0, description="Seconds between health rounds over every host (0: none)."
    )
    offline_after: float = Field(
        60.0, gt=0, description="Seconds without a successful report before a host is offline."
    )

    replica: str = Field(
        "", max_length=200, description="This server's name among replicas (default HOST:PORT)."
    )
    lease_seconds: float | None = Field(
        None,
        ge=3,
        le=3600,
        description="Seconds a rollout's lease holds without a heartbeat, then a replica's sweep"
        " fails what it ran (default: 20 on PostgreSQL, where replicas share the work; 60 on"
        " SQLite).",
    )
    recovery_interval: float = Field(
        5.0,
        ge=0,
        description="Seconds between sweeps for what a gone replica or CLI left running (0: none).",
    )
    event_retention_days: int = Field(
        30, ge=1, le=100_000, description="Days events are kept; older ones are purged daily."
    )

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, port = split_listen(value)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    @property
    def host(self) -> str:
        return split_listen(self.listen)[0]

    @property
    def port(self) -> int:
        return split_listen(self.listen)[1]

    @property
    def replica_name(self) -> str:
        """The replica's name: as set, else this machine's name and the port."""
        return self.replica or f"{socket.gethostname()}:{self.port}"

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the address."""
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"


def split_listen(value: str) -> tuple[str, int]:
    """`ADDR:PORT` (`[v6]:PORT` for IPv6) as its host and port."""
    host, sep, port_text = value.strip().rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host:
        raise ValueError(f"expected ADDR:PORT, got {value!r}")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"the port must be a number, got {port_text!r}") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"the port must be from 1 to 65535, got {port}")
    return host, port


def load_settings(
    flags: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    file: Path | None = None,
) -> Settings:
    """The settings from every source, the flags winning; a wrong value names its source."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if file is not None:
        layers.append((str(file), _from_file(file)))
    env = _from_environment(environ or {})
    if env:
        layers.append(("the environment", env))
    given = {k: v for k, v in (flags or {}).items() if v is not None}
    if given:
        layers.append(("the command line", given))
    merged: dict[str, Any] = {}
    for source, values in layers:
        try:
            Settings.model_validate({**merged, **values})
        except ValidationError as exc:
            raise UsageError(f"server settings from {source}: {_explain(exc)}") from None
        merged.update(values)
    return Settings.model_validate(merged)


def _from_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise UsageError(f"cannot read the settings file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    return {k.replace("-", "_"): v for k, v in data.items()}


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in Settings.model_fields:
        value = environ.get(ENV_PREFIX + name.upper())
        if value is not None and value != "":
            out[name] = value
    return out


def _explain(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return "; ".join(parts)
