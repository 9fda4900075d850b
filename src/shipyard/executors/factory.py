"""Which executor serves which host: local or SSH, with its root, sudo and shared SSH context."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from types import TracebackType

from shipyard.config.models import Host, SecretSource, SshSettings
from shipyard.config.topology import is_local, project_path, resolve_host
from shipyard.errors import ConfigError, Problem
from shipyard.executors.base import DEFAULT_OUTPUT_LIMIT, Executor
from shipyard.executors.command_line import check_password
from shipyard.executors.local import LocalExecutor
from shipyard.executors.ssh import SshContext, SshExecutor, SshTarget

__all__ = ["ExecutorPool", "executor_for", "is_local", "read_secret"]


def read_secret(source: SecretSource, project_dir: Path, field: str) -> str:
    """The value of a secret (an environment variable or a project-relative file)."""
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise ConfigError(
                Problem(f"environment variable {source.env} is not set", f"{field}.env")
            )
        return value
    assert source.file is not None
    path = project_path(source.file, project_dir)
    try:
        return path.read_text().rstrip("\n")
    except OSError as exc:
        raise ConfigError(Problem(f"cannot read {path}: {exc.strerror}", f"{field}.file")) from exc


class ExecutorPool:
    """The executors of one run: one per host, created on first use, sharing one SSH context.

    Use it as `async with ExecutorPool(...) as pool:`; leaving closes every connection.
    """

    def __init__(
        self,
        ssh: SshSettings,
        project_dir: Path,
        *,
        accept_new: bool | None = None,
        output_limit: int = DEFAULT_OUTPUT_LIMIT,
    ) -> None:
        self.ssh = ssh
        self.project_dir = project_dir
        self.output_limit = output_limit
        self._context = SshContext(ssh, project_dir, accept_new=accept_new)
        self._executors: dict[str, Executor] = {}
        self._password: str | None = None

    def executor(self, host_name: str, host: Host) -> Executor:
        """The executor for a host; the same object every time within this pool."""
        if host_name not in self._executors:
            self._executors[host_name] = self._create(host_name, host)
        return self._executors[host_name]

    async def close(self) -> None:
        executors = list(self._executors.values())
        await asyncio.gather(*(executor.close() for executor in executors))
        self._context.close()

    async def __aenter__(self) -> ExecutorPool:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _create(self, host_name: str, host: Host) -> Executor:
        access = resolve_host(host_name, host, self.ssh, self.project_dir)
        password = self._sudo_password(access.sudo_password)
        if access.local:
            return LocalExecutor(
                access.name,
                access.root,
                sudo=access.sudo,
                sudo_password=password,
                output_limit=self.output_limit,
            )
        target = SshTarget(
            address=access.address,
            port=access.port,
            user=access.user,
            identity_file=access.identity_file,
        )
        return SshExecutor(
            access.name,
            target,
            self._context,
            root=access.root,
            sudo=access.sudo,
            sudo_password=password,
            output_limit=self.output_limit,
        )

    def _sudo_password(self, source: SecretSource | None) -> str | None:
        """The project's sudo password (`ssh.sudo_password`), read once per pool."""
        if source is None:
            return None
        if self._password is None:
            value = read_secret(source, self.project_dir, "ssh.sudo_password")
            try:
                self._password = check_password(value)
            except ValueError as exc:
                raise ConfigError(Problem(str(exc), "ssh.sudo_password")) from exc
        return self._password


def executor_for(
    host_name: str,
    host: Host,
    ssh: SshSettings,
    project_dir: Path,
    *,
    accept_new: bool | None = None,
) -> Executor:
    """One executor for one host, on its own. For many hosts use an ExecutorPool, which shares
    the parsed ssh_config, known_hosts and keys between them."""
    return ExecutorPool(ssh, project_dir, accept_new=accept_new).executor(host_name, host)
