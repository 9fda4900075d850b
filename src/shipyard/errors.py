"""Shipyard's exception tree: one root, one family per layer.

    ShipyardError
    ├── ConfigError            invalid project: every Problem found (file:line:col, field path)
    ├── UsageError             an argument names something that does not exist
    ├── UnsafeValue            (commands.script) a value a builder cannot carry safely
    ├── ExecutionError         something went wrong on a host
    │   ├── CommandFailed      a command exited non-zero (host, argv, exit status, stderr tail)
    │   ├── CommandTimeout     a command ran past its timeout
    │   ├── ConnectError       a host could not be reached or refused us (host key, auth, timeout)
    │   └── TransferError      put/get of a file or directory failed
    ├── DeployError            a deployment could not go on
    │   ├── ConcurrentDeployment  another deployment holds the instance (names the holder)
    │   ├── AlreadyDeployed    the instance is already at the revision asked for (names who)
    │   └── ArtifactBusy       another run is pushing the same artifact to the same site
    └── StoreError             the state store failed or holds something unexpected
        ├── StoreConflict      a write broke a unique or reference rule of the store
        ├── RecordNotFound     no deployment or rollout has that id
        ├── NotActive          the deployment or rollout is already finished
        ├── StoreUnavailable   the database could not be reached or was locked (transient)
        └── LeaseLost          this controller no longer holds its deployments' lease

The CLI maps ConfigError (and other bad input) to exit status 2 and every other ShipyardError to 1.
"""

from __future__ import annotations

from dataclasses import dataclass


class ShipyardError(Exception):
    """Root of every error Shipyard raises on purpose."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can."""

    message: str
    path: str = ""  # field path, e.g. services.api.depends_on[1]
    file: str = ""
    line: int = 0  # 1-based; 0 when unknown
    column: int = 0  # 1-based; 0 when unknown

    def location(self) -> str:
        if not self.file:
            return ""
        if not self.line:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"

    def __str__(self) -> str:
        where = self.location()
        what = f"{self.path}: {self.message}" if self.path else self.message
        return f"{where}: {what}" if where else what


class ConfigError(ShipyardError):
    """The project is invalid; `problems` lists everything found, not only the first."""

    def __init__(self, problems: list[Problem] | Problem) -> None:
        self.problems = [problems] if isinstance(problems, Problem) else list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(ShipyardError):
    """A command-line argument or API request names something that does not exist."""


class ExecutionError(ShipyardError):
    """Something went wrong on a host."""

    def __init__(self, host: str, message: str) -> None:
        self.host = host
        self.reason = message
        super().__init__(f"{host}: {message}")


class ConnectError(ExecutionError):
    """The host could not be reached, or refused our key, or its host key was not trusted."""


class TransferError(ExecutionError):
    """Uploading or downloading a file or directory failed."""


class DeployError(ShipyardError):
    """A deployment could not go on."""


class ConcurrentDeployment(DeployError):
    """Another deployment is pending or in progress for the same instance."""

    def __init__(self, instance: str, deployment_id: str, actor: str, since: str) -> None:
        self.instance = instance
        self.deployment_id = deployment_id
        self.actor = actor
        self.since = since
        super().__init__(
            f"{instance} is already being deployed by deployment {deployment_id}"
            f" (actor {actor}, since {since})"
        )


class ArtifactBusy(DeployError):
    """Another run holds the claim on an artifact at a site (names the run and its actor)."""

    def __init__(self, artifact: str, site: str, run_id: str, since: str) -> None:
        self.artifact, self.site, self.run_id = artifact, site, run_id
        super().__init__(
            f"artifact {artifact} is already being pushed to site {site} by run {run_id}"
            f" (since {since})"
        )


class AlreadyDeployed(DeployError):
    """The instance is already at the revision a new deployment would bring it to."""

    def __init__(self, instance: str, revision: str, deployment_id: str, actor: str, at: str):
        self.instance = instance
        self.revision = revision
        self.deployment_id = deployment_id
        self.actor = actor
        self.at = at
        super().__init__(
            f"{instance} is already at revision {revision[:12]}"
            f" (deployment {deployment_id} by {actor} at {at})"
        )


class StoreError(ShipyardError):
    """The state store failed or holds something unexpected."""


class StoreConflict(StoreError):
    """A write broke a unique or reference rule of the store (an id used twice, an unknown id)."""


class RecordNotFound(StoreError):
    """No deployment or rollout has that id."""

    def __init__(self, kind: str, record_id: str) -> None:
        self.kind = kind
        self.record_id = record_id
        super().__init__(f"no {kind} with id {record_id}")


class NotActive(StoreError):
    """The deployment or rollout is already finished, e.g. recovery marked it interrupted."""

    def __init__(self, kind: str, record_id: str, status: str) -> None:
        self.kind = kind
        self.record_id = record_id
        self.status = status
        super().__init__(f"{kind} {record_id} is already finished ({status})")


class StoreUnavailable(StoreError):
    """The database could not be reached, dropped the connection or stayed locked: worth a retry."""


class LeaseLost(StoreError):
    """This controller's lease ran out (or could not be renewed in time): it must stop, since
    another controller may now own its deployments."""
