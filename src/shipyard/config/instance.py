"""A flattened instance and its config: the value, its revision, and paths into it.

What `flatten` produces and every later layer reads; kept apart from how it is produced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from shipyard.config.models import Strategy
from shipyard.config.render import Secrets, reveal

if TYPE_CHECKING:
    from shipyard.config.loader import LoadedProject
    from shipyard.config.shared_artifacts import SiteArtifact

Json = dict[str, Any]
ConfigPath = tuple[str, ...]


@dataclass(frozen=True)
class Instance:
    """One service on one host, flattened. `config` is masked: secrets read `***`."""

    name: str
    service: str
    host: str
    site: str
    config: Json
    revision: str
    depends_on: tuple[str, ...]
    secrets: dict[str, str] = field(default_factory=dict)  # name -> fingerprint
    sealed: dict[ConfigPath, str] = field(default_factory=dict)  # path -> text with tokens
    # The service's strategy, validated once for all its instances (None: read from config).
    known_strategy: Strategy | None = field(default=None, compare=False, repr=False)

    @property
    def strategy(self) -> Strategy:
        """How the instance's service rolls out (its config holds no secret there)."""
        if self.known_strategy is not None:
            return self.known_strategy
        return Strategy.model_validate(self.config.get("strategy", {}))

    def as_deployed(self, revision: str, config: Json, secrets: dict[str, str]) -> Instance:
        """This instance as an earlier deployment left it (a stored snapshot), for rollback."""
        return Instance(
            self.name,
            self.service,
            self.host,
            self.site,
            config,
            revision,
            self.depends_on,
            secrets,
        )


@dataclass
class Flattened:
    """Every instance of a project, by name, in service-map order."""

    loaded: LoadedProject
    instances: dict[str, Instance]
    secrets: Secrets
    # The system-wide artifacts (`artifacts:`): name -> site -> as that site gets it.
    artifacts: dict[str, dict[str, SiteArtifact]] = field(default_factory=dict)

    def realise(self, instance: Instance) -> Json:
        """The config with real secret values, for the host only; never print or store it."""
        if not instance.sealed:
            return instance.config
        config = instance.config
        for path, text in instance.sealed.items():
            config = set_path(config, path, reveal(text, self.secrets.require))
        return config

    def service_edges(self) -> dict[str, list[str]]:
        return {n: list(s.depends_on) for n, s in self.loaded.project.services.items()}


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def canonical_json(value: Any) -> str:
    """Sorted keys, no spaces, text as it is; one encoder for all (json.dumps with options
    builds a new one at each call)."""
    return _CANONICAL.encode(value)


def revision_of(config: Json, secrets: dict[str, str]) -> str:
    digest = hashlib.sha256(canonical_json(config).encode())
    if secrets:
        digest.update(b"\0" + canonical_json(secrets).encode())
    return digest.hexdigest()


def config_strings(value: Any, path: ConfigPath = ()) -> Iterator[tuple[ConfigPath, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from config_strings(item, (*path, str(key)))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from config_strings(item, (*path, str(index)))
    elif isinstance(value, str):
        yield path, value


def containers_of(
    doc: Json, paths: list[ConfigPath]
) -> list[tuple[ConfigPath, str | int, ConfigPath]]:
    """Each container above `paths` in `doc` (not `doc` itself), parents first: its parent's
    path, its key there (an int in a list) and its own path (paths as `_strings` gives them)."""
    out: dict[ConfigPath, tuple[ConfigPath, str | int, ConfigPath]] = {}
    for path in paths:
        value: Any = doc
        for depth in range(1, len(path)):
            key: str | int = path[depth - 1]
            if isinstance(value, list):
                key = int(key)
            value = value[key]
            out.setdefault(path[:depth], (path[: depth - 1], key, path[:depth]))
    return sorted(out.values(), key=lambda item: len(item[2]))


def set_path(config: Json, path: ConfigPath, value: Any) -> Json:
    """A copy of `config` with `path` set, copying only the containers along the path."""
    head, rest = path[0], path[1:]
    out = dict(config)
    if not rest:
        out[head] = value
        return out
    child = out[head]
    if isinstance(child, list):
        items = list(child)
        index = int(rest[0])
        items[index] = value if len(rest) == 1 else set_path(items[index], rest[1:], value)
        out[head] = items
    else:
        out[head] = set_path(child, rest, value)
    return out
