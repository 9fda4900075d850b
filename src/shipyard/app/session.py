"""The session: a project, its store, its executors and who is acting, all passed in."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from shipyard.errors import UsageError
from shipyard.masking import NO_SECRETS, Masker, masker_for

if TYPE_CHECKING:
    from shipyard.app.index import InstanceIndex
    from shipyard.app.statusrows import StatusReads
    from shipyard.config.flatten import Flattened
    from shipyard.config.loader import LoadedProject
    from shipyard.deploy.lease import LeasePolicy
    from shipyard.executors.factory import ExecutorPool
    from shipyard.store import Controller, Store

# Tuning for tests and slow stores: seconds a lease holds, and store errors are retried.
LEASE_VARIABLE = "SHIPYARD_LEASE_SECONDS"
PATIENCE_VARIABLE = "SHIPYARD_STORE_PATIENCE"
ACTOR_VARIABLE = "SHIPYARD_ACTOR"


@dataclass(frozen=True)
class Identity:
    """Who acts and as which controller, under which lease policy."""

    actor: str
    controller: Controller
    policy: LeasePolicy


@dataclass
class Session:
    """One project as every use case sees it. Nothing here reads the process's environment:
    `env` is what the store URL, the secret key and the secrets are read from."""

    project_file: Path
    env: Mapping[str, str]
    # Given, or made on first use (the controller's identity needs the store's code).
    identity_source: Identity | Callable[[], Identity]
    accept_new: bool | None = None  # trust host keys seen for the first time
    # Where the state lives when the project files are a copy (a server's config version):
    # the store's default SQLite file, the secret key and the local hosts' roots stay there.
    state_root: Path | None = None
    _loaded: LoadedProject | None = field(default=None, repr=False)
    _flat: Flattened | None = field(default=None, repr=False)
    _masker: Masker | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)
    _identity: Identity | None = field(default=None, repr=False)
    _owns_store: bool = field(default=True, repr=False)

    @classmethod
    def from_environment(
        cls,
        project_file: Path,
        environ: Mapping[str, str] | None = None,
        *,
        replica: str = "",
        lease_seconds: float | None = None,
    ) -> Session:
        """The session of a command run by a person: actor, lease tuning and secrets from the
        environment (`os.environ` by default), this process as the controller. A server names
        its `replica` and the `lease_seconds` its rollouts hold."""
        env = dict(os.environ if environ is None else environ)

        def identity() -> Identity:
            from shipyard.store.owner import Controller

            return Identity(
                actor=actor_from(env),
                controller=Controller.of_process(replica=replica),
                policy=lease_policy(env, seconds=lease_seconds),
            )

        return cls(project_file=project_file, env=env, identity_source=identity)

    def acting_as(self, actor: str, *, own_lease: bool = False) -> Session:
        """This session for another actor: the same project and store, loaded once (a server
        makes one per request). With `own_lease` it acts as a controller of its own (same
        process, new id), so that a rollout releasing its lease never touches another's. The
        copy never closes the store it shares."""
        self.flatten(empty_ok=True)
        self.store  # noqa: B018 (opened, recovery done, before it is shared)
        controller = self.controller
        if own_lease:
            from shipyard.store.owner import Controller

            controller = Controller.of_process(replica=controller.replica)
        identity = replace(self.identity, actor=actor, controller=controller)
        return replace(self, identity_source=identity, _identity=identity, _owns_store=False)

    @property
    def identity(self) -> Identity:
        if self._identity is None:
            source = self.identity_source
            self._identity = source if isinstance(source, Identity) else source()
        return self._identity

    @property
    def actor(self) -> str:
        return self.identity.actor

    @property
    def controller(self) -> Controller:
        return self.identity.controller

    @property
    def policy(self) -> LeasePolicy:
        return self.identity.policy

    # The project.

    def load(self) -> LoadedProject:
        if self._loaded is None:
            from shipyard.config.loader import load_project

            loaded = load_project(self.project_file)
            if self.state_root is not None:
                loaded = replace(loaded, state_root=self.state_root.absolute())
            self._loaded = loaded
        return self._loaded

    @property
    def root(self) -> Path:
        """The directory of the project's files."""
        return self.load().root

    @property
    def home(self) -> Path:
        """The directory the project's state belongs to (`root`, unless a copy)."""
        return self.load().home

    def over(
        self, project_file: Path, *, state_root: Path | None = None, take_store: bool = False
    ) -> Session:
        """A session of other files of the same project (another config version): the same
        store, actor and controller, its state kept under `state_root` (None: the files' own
        directory). With `take_store` the new session closes the store in this one's place
        (this one goes on working for whoever still holds it); else it never closes it."""
        self.store  # noqa: B018 (opened, recovery done, before it is shared)
        owns = take_store and self._owns_store
        other = replace(
            self, project_file=project_file, state_root=state_root,
            _loaded=None, _flat=None, _masker=None, _identity=self.identity, _owns_store=owns,
        )  # fmt: skip
        if owns:
            self._owns_store = False
        return other

    def take_store_from(self, other: Session) -> None:
        """Close the store `other` shares with this session in its place (when it owned it)."""
        if other._store is not self._store:
            raise ValueError("take_store_from: the sessions do not share a store")
        self._owns_store, other._owns_store = other._owns_store or self._owns_store, False

    def flatten(self, *, empty_ok: bool = False) -> Flattened:
        """The project's instances; a project without any is an error unless `empty_ok`."""
        if self._flat is None:
            from shipyard.config.flatten import flatten_project

            loaded = self.load()
            # Without secrets there is nothing to fingerprint, and no key file to make.
            key = self._secret_key() if loaded.project.secrets else b""
            self._flat = flatten_project(
                loaded, environ=dict(self.env), secret_key=key, empty_ok=empty_ok
            )
        return self._flat

    def flattened_if_done(self) -> Flattened | None:
        """The flattened project when this session has flattened it already."""
        return self._flat

    def index(self) -> InstanceIndex:
        """Each instance's place and revision (kept between runs: see app/index.py)."""
        from shipyard.app.index import instance_index

        return instance_index(self)

    def secret_fingerprints(self, loaded: LoadedProject) -> dict[str, str] | None:
        """Each declared secret's keyed fingerprint (never its value); None when one cannot
        be read."""
        if not loaded.project.secrets:
            return {}
        from shipyard.config.render import Secrets, fingerprint

        secrets = Secrets(loaded.project.secrets, loaded.root, dict(self.env))
        key = self._secret_key()
        found: dict[str, str] = {}
        for name in loaded.project.secrets:
            value = secrets.value(name)
            if value is None:
                return None
            found[name] = fingerprint(name, value, key)
        return found

    def _secret_key(self) -> bytes:
        from shipyard.store.secret_key import secret_key

        return secret_key(self.home, self.env)

    def masker(self) -> Masker:
        """The project's secret values, for every text that leaves (loads the project)."""
        if self._masker is None:
            self._masker = masker_for(self._flat or self.load())
        return self._masker

    def masker_if_loaded(self) -> Masker:
        """The masker once the project is loaded; before that no secret is known to anything."""
        return self.masker() if self._loaded is not None else NO_SECRETS

    # The store and the hosts.

    def database_url(self) -> str:
        from shipyard.store.places import database_url

        return database_url(self.home, self.env)

    @property
    def store(self) -> Store:
        """The project's store, opened on first use; what a gone controller left in flight is
        finished as failed (recovery reads first: when nothing is left over, it writes nothing)."""
        if self._store is None:
            from shipyard.store import open_store

            store = open_store(self.database_url(), masker=self.masker())
            try:
                store.recover_interrupted(here=self.controller)
            except BaseException:
                store.close()
                raise
            self._store = store
        return self._store

    @contextmanager
    def status_reads(self) -> Iterator[StatusReads]:
        """What status and plan read. A SQLite store at the newest migration with nothing in
        flight (recovery has nothing to do) is read through the standard library's driver,
        without loading SQLAlchemy (store.quick); any other store is opened as `store` is."""
        if self._store is None:
            from shipyard.store.quick import open_quick

            quick = open_quick(self.database_url())
            if quick is not None:
                with quick:
                    yield quick
                return
        yield self.store

    def read_only_store(self) -> Store:
        """The store opened without recovery, for a check that must never write (the caller
        closes it)."""
        from shipyard.store import open_store

        return open_store(self.database_url(), masker=self.masker())

    def executor_pool(self, *, accept_new: bool | None = None) -> ExecutorPool:
        """A pool of executors for the project's hosts, to enter on the loop that uses it."""
        from shipyard.executors.factory import ExecutorPool

        loaded = self.load()
        trust = accept_new if accept_new is not None else self.accept_new
        return ExecutorPool(loaded.project.ssh, loaded.home, accept_new=trust or None)

    def close(self) -> None:
        if self._store is not None and self._owns_store:
            self._store.close()
        self._store = None

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def shared_store(env: Mapping[str, str]) -> bool:
    """Whether `env` names a PostgreSQL store (which several servers and CLIs may share)."""
    from shipyard.store.places import DATABASE_URL_VARIABLE

    return env.get(DATABASE_URL_VARIABLE, "").strip().startswith("postgresql")


def lease_policy(env: Mapping[str, str], *, seconds: float | None = None) -> LeasePolicy:
    """The lease a deploying session keeps: defaults, or `seconds` (a server's setting) or
    $SHIPYARD_LEASE_SECONDS (heartbeats every sixth of it), and $SHIPYARD_STORE_PATIENCE."""
    from shipyard.deploy.lease import LeasePolicy

    default = LeasePolicy()
    if seconds is None:
        seconds = _seconds(env, LEASE_VARIABLE, default.seconds)
    patience = _seconds(env, PATIENCE_VARIABLE, default.patience)
    if seconds <= 0:
        raise UsageError(f"${LEASE_VARIABLE} must be more than 0 seconds, not {seconds:g}")
    heartbeat = default.heartbeat if seconds == default.seconds else seconds / 6
    return LeasePolicy(seconds=seconds, heartbeat=heartbeat, patience=patience)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"${name} must be a number of seconds, not {text!r}") from None
    if not value >= 0:  # negative, or nan
        raise UsageError(f"${name} must not be negative, not {text!r}")
    return value


def actor_from(env: Mapping[str, str]) -> str:
    """Who is acting: $SHIPYARD_ACTOR, else user@machine."""
    import getpass
    import socket

    return env.get(ACTOR_VARIABLE) or f"{getpass.getuser()}@{socket.gethostname()}"
