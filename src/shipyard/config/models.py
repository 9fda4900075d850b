"""The project schema (pydantic v2): the only description of what `shipyard.yaml` may hold."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
Name = Annotated[str, Field(pattern=NAME_PATTERN)]
Argv = Annotated[list[str], Field(min_length=1)]
# A count ("2") or a share of the instances ("25%").
CountOrShare = Annotated[int | str, Field(union_mode="left_to_right")]
SHARE = re.compile(r"^(100|[1-9]?[0-9])(\.[0-9]+)?%$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretSource(Model):
    """Where a secret's value comes from. Its value is never printed: outputs show `***`."""

    env: str | None = Field(None, description="Name of an environment variable holding the value.")
    file: str | None = Field(None, description="File holding the value (relative to the project).")

    @model_validator(mode="after")
    def _one_source(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of `env` or `file`")
        return self


class SshSettings(Model):
    """How to reach hosts over SSH. Project-wide defaults; a host may override user, port, key."""

    user: str | None = Field(None, description="Login user (default: from ssh_config, then $USER).")
    port: int | None = Field(None, ge=1, le=65535, description="Port (default: ssh_config, 22).")
    identity_file: str | None = Field(None, description="Private key to offer.")
    config_file: str | None = Field(
        None, description="An ssh_config file to honour (default ~/.ssh/config)."
    )
    known_hosts: str | None = Field(
        None,
        description="known_hosts file to verify host keys against (default ~/.ssh/known_hosts).",
    )
    accept_new: bool = Field(
        False,
        description="Trust host keys seen for the first time, recording them in Shipyard's own "
        "known_hosts file; a changed key is always refused.",
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to wait for a connection.")
    keepalive_interval: float = Field(15.0, ge=0, description="Seconds between keepalives.")
    max_in_flight: int = Field(200, ge=1, description="Hosts worked on at once in a fan-out.")
    sudo_password: SecretSource | None = Field(
        None, description="Password for sudo, sent on stdin, never in argv."
    )


class NginxSettings(Model):
    """Where nginx reads Shipyard's upstream files and how to reload it."""

    managed: bool = Field(
        False,
        description="Shipyard runs this host's own nginx under <root>/nginx (started by "
        "`shipyard bootstrap`); conf_dir, test and reload then point at it.",
    )
    conf_dir: str = Field("/etc/nginx/conf.d", description="Directory for Shipyard's config files.")
    test: Argv = Field(["nginx", "-t"], description="Command that checks nginx's configuration.")
    reload: Argv = Field(["nginx", "-s", "reload"], description="Command for a graceful reload.")


class Host(Model):
    """One machine, reached over SSH or, for `connection: local`, this machine."""

    address: str | None = Field(
        None, description="Address or ssh_config alias (default: its name)."
    )
    connection: Literal["ssh", "local"] | None = Field(
        None, description="`ssh` or `local` (default: `local` for a host named local, else ssh)."
    )
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = None
    identity_file: str | None = None
    labels: list[Name] = Field(
        default_factory=list, description="Labels services can be placed by."
    )
    vars: dict[str, Any] = Field(default_factory=dict, description="Variables for this host.")
    root: str | None = Field(
        None,
        description="Deploy root on the host (default /srv/shipyard; for a local host "
        ".shipyard/hosts/<name> in the project directory).",
    )
    supervisor: Literal["supervisord", "systemd"] = Field(
        "supervisord", description="Process supervisor that runs the services."
    )
    supervisor_config: str | None = Field(
        None,
        description="supervisord.conf to talk to (default: <root>/supervisor/supervisord.conf, "
        "started by `shipyard bootstrap`).",
    )
    systemd_unit_dir: str = Field(
        "/etc/systemd/system",
        description="systemd: where the services' unit files are installed.",
    )
    nginx: NginxSettings = Field(default_factory=NginxSettings)
    sudo: bool = Field(False, description="Run host commands with sudo.")


class Site(Model):
    """A named group of hosts: a data centre, region, customer site or environment."""

    hosts: dict[Name, Host] = Field(min_length=1)
    vars: dict[str, Any] = Field(default_factory=dict)


class Artifact(Model):
    """The files a release is made of: a directory or archive in the project (see `path`)."""

    path: str | None = Field(
        None,
        description="Directory or archive (.tar, .tar.gz, .tgz, .tar.xz, .tar.bz2, .zip) inside "
        "the project, relative to the project file (required). Its links must stay inside it; "
        "devices, fifos, members with `..` or absolute paths, and top-level names starting with "
        "`.shipyard` (Shipyard's own in a release) are refused.",
    )
    exclude: list[str] = Field(
        default_factory=list, description="Glob patterns left out (of directories and archives)."
    )


class HealthCheck(Model):
    """How to tell that a freshly started release is healthy."""

    http: str | None = Field(None, description="URL that must answer `expect_status`.")
    command: Argv | None = Field(None, description="Command that must exit 0 (run on the host).")
    expect_status: int = Field(200, ge=100, le=599)
    timeout: float = Field(5.0, gt=0, description="Seconds allowed for one attempt.")
    retries: int = Field(20, ge=0, description="Attempts after the first before giving up.")
    interval: float = Field(0.5, ge=0, description="Seconds between attempts.")


class Commands(Model):
    """A service's commands, each an argv list; `start` runs in the foreground."""

    build: Argv | None = Field(None, description="Run on the controller before the upload.")
    install: Argv | None = Field(None, description="Run on the host in the new release directory.")
    start: Argv | None = Field(None, description="The long-running process.")
    stop: Argv | None = Field(None, description="Run before the process is stopped.")


class Strategy(Model):
    """How a new release replaces the old one."""

    kind: Literal["restart", "rolling", "blue-green", "canary"] = "restart"
    batch: CountOrShare = Field(1, description="Instances per batch: a count or a share ('25%').")
    max_failures: CountOrShare = Field(
        0,
        description="Failure budget for the whole rollout, a count or a share; the rollout stops "
        "once failures are strictly more than it. Unreachable hosts count as failures.",
    )
    pause: float = Field(0.0, ge=0, description="Seconds to wait between batches.")
    canary: CountOrShare = Field(1, description="Size of the canary batch.")
    soak: float = Field(30.0, ge=0, description="Seconds the canary must stay healthy.")
    deploy_timeout: float = Field(60.0, gt=0, description="Seconds a new slot has to get healthy.")
    drain_timeout: float = Field(30.0, ge=0, description="Seconds the old slot may drain.")
    keep_releases: int = Field(5, ge=1, description="Releases kept on the host for rollback.")
    switch: Literal["restart", "blue-green"] | None = Field(
        None,
        description="How each host swaps releases: `restart` in place, or `blue-green` slots "
        "behind nginx (default: blue-green for kind blue-green, else restart). Rolling and "
        "canary rollouts with `switch: blue-green` keep every host serving.",
    )
    front: str | None = Field(
        None,
        description="blue-green: the address:port nginx listens on for the service "
        "(default: port `ports.http` on every address).",
    )
    upstream_host: str = Field(
        "127.0.0.1", description="blue-green: the address the slots listen on, for nginx."
    )

    @property
    def uses_slots(self) -> bool:
        return self.switch == "blue-green" or (self.switch is None and self.kind == "blue-green")

    @field_validator("batch", "max_failures", "canary")
    @classmethod
    def _count_or_share(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("must not be negative")
            return value
        if not SHARE.match(value):
            raise ValueError(f"must be a count or a percentage like '25%', not {value!r}")
        return value


class ServiceBody(Model):
    """What a template defines and a derived template or a service may override."""

    artifact: Artifact | None = None
    files: dict[str, str] | None = Field(
        None,
        description="Rendered files: release path -> Jinja2 template (project-relative). A "
        "rendered file takes the place of an artifact's file at the same path (the artifact's "
        "own file is left as it is); it may not replace a directory, go through a link or use a "
        "`.shipyard` name.",
    )
    env: dict[str, str | int | float | bool] | None = Field(
        None, description="Environment of the process."
    )
    commands: Commands | None = None
    health: HealthCheck | None = None
    ports: dict[Name, Annotated[int, Field(ge=1, le=65535)]] | None = Field(
        None,
        description="Named ports. blue-green: nginx serves `http`; the slots listen on `blue` "
        "and `green` (default http+1 and http+2), given to the process as $PORT.",
    )
    strategy: Strategy | None = None
    vars: dict[str, Any] | None = Field(None, description="Variables for rendering.")


class Template(ServiceBody):
    """A reusable service definition."""

    extends: Name | None = Field(None, description="The template this one derives from.")
    locked: list[str] = Field(
        default_factory=list,
        description="Member paths (e.g. `health`, `env.MODE`) no derived template or service "
        "may override.",
    )


class Service(Model):
    """One entry of the service map."""

    template: Name
    sites: list[Name] = Field(default_factory=list, description="Place on every host of these.")
    hosts: list[Name] = Field(default_factory=list, description="Place on these hosts.")
    labels: list[Name] = Field(
        default_factory=list, description="Place on hosts with any of these."
    )
    overrides: ServiceBody = Field(default_factory=ServiceBody)
    depends_on: list[Name] = Field(default_factory=list)


ALL_SITES = "all"
FILE_MODE = re.compile(r"^0?[0-7]{3}$")
RESERVED_PART = ".shipyard"


class ArtifactFile(Model):
    """One file of a system-wide artifact: a file of the project, or text written inline."""

    source: str | None = Field(
        None, description="File inside the project, relative to the project file."
    )
    content: str | None = Field(None, description="The file's text, inline.")

    @model_validator(mode="after")
    def _one_source(self) -> ArtifactFile:
        if (self.source is None) == (self.content is None):
            raise ValueError("give exactly one of `source` or `content`")
        return self


class SharedArtifact(Model):
    """A system-wide file set (`artifacts:`): shared scripts, certificates, connection
    definitions, notification lists; pushed to every host of its sites by `artifacts deploy`."""

    target: str = Field(
        description="Directory on each host, an absolute path taken inside the host's deploy "
        "root, as instances are: `/shared/certs` lands in `<root>/shared/certs`."
    )
    files: dict[str, ArtifactFile] = Field(
        min_length=1, description="File name (relative to `target`) -> its source or content."
    )
    sites: list[Name] | str = Field(
        ALL_SITES, description="The sites whose every host gets it: a list, or `all`."
    )
    mode: str = Field("0644", description="Octal mode of every file, e.g. `0640`.")
    template: bool = Field(
        False,
        description="Render each file with the sandboxed templates (project and site "
        "variables, `site`, `artifact`, `secrets`) once per site.",
    )

    @field_validator("target")
    @classmethod
    def _absolute(cls, value: str) -> str:
        parts = value.split("/")
        if not value.startswith("/") or ".." in parts or any(c in value for c in "\0\n\r"):
            raise ValueError(f"must be an absolute path without `..` or line breaks, not {value!r}")
        return value

    @field_validator("files")
    @classmethod
    def _relative(cls, value: dict[str, ArtifactFile]) -> dict[str, ArtifactFile]:
        for name in value:
            parts = name.split("/")
            if (
                not name
                or name.startswith("/")
                or any(p in ("", ".", "..") for p in parts)
                or any(p.startswith(RESERVED_PART) for p in parts)
                or any(c in name for c in "\0\n\r")
            ):
                raise ValueError(
                    f"file name {name!r} must be a relative path inside the target, without "
                    "`..`, empty parts, line breaks or names starting with `.shipyard`"
                )
        return value

    @field_validator("sites")
    @classmethod
    def _all_or_list(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, str) and value != ALL_SITES:
            raise ValueError(f"must be `all` or a list of site names, not {value!r}")
        return value

    @field_validator("mode")
    @classmethod
    def _octal(cls, value: str) -> str:
        if not FILE_MODE.match(value):
            raise ValueError(f"must be an octal mode like '0644' (a quoted string), not {value!r}")
        return value if len(value) == 4 else "0" + value


class Project(Model):
    """A whole `shipyard.yaml` (after its includes are merged)."""

    name: Name = Field("shipyard", description="Project name.")
    include: list[str] = Field(default_factory=list, description="Further files (globs allowed).")
    ssh: SshSettings = Field(default_factory=SshSettings)
    vars: dict[str, Any] = Field(default_factory=dict, description="Project-wide variables.")
    secrets: dict[Name, SecretSource] = Field(default_factory=dict)
    sites: dict[Name, Site] = Field(default_factory=dict)
    templates: dict[Name, Template] = Field(default_factory=dict)
    services: dict[Name, Service] = Field(default_factory=dict)
    artifacts: dict[Name, SharedArtifact] = Field(
        default_factory=dict, description="System-wide file sets pushed to sites."
    )


class InstanceSpec(ServiceBody):
    """The merged body of one service, before per-host rendering; what every instance must have.

    Templates and overrides may each be partial; these checks run once they are merged.
    """

    commands: Commands = Field(default_factory=Commands)
    strategy: Strategy = Field(default_factory=Strategy)

    @model_validator(mode="after")
    def _complete(self) -> InstanceSpec:
        if self.health is not None and (self.health.http is None) == (self.health.command is None):
            raise ValueError("health: give exactly one of `http` or `command`")
        if self.artifact is not None and self.artifact.path is None:
            raise ValueError("artifact: `path` is required")
        if self.commands.start is None:
            raise ValueError("no start command (commands.start) in its template chain")
        return self
