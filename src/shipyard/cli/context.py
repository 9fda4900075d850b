"""What every command shares: the project file, loading and flattening it, selecting instances."""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import typer

from shipyard.config.flatten import Flattened, Instance, flatten_project
from shipyard.config.loader import LoadedProject, load_project
from shipyard.errors import UsageError
from shipyard.masking import NO_SECRETS, Masker, masker_for
from shipyard.store.secret_key import secret_key


@dataclass
class CliState:
    project_file: Path
    _loaded: LoadedProject | None = field(default=None, repr=False)
    _flat: Flattened | None = field(default=None, repr=False)
    _masker: Masker | None = field(default=None, repr=False)

    def load(self) -> LoadedProject:
        if self._loaded is None:
            self._loaded = load_project(self.project_file)
        return self._loaded

    def flatten(self, *, empty_ok: bool = False) -> Flattened:
        """The project's instances; a project without any is an error unless `empty_ok`."""
        if self._flat is None:
            loaded = self.load()
            # Without secrets there is nothing to fingerprint, and no key file to make.
            key = secret_key(loaded.root, os.environ) if loaded.project.secrets else b""
            self._flat = flatten_project(loaded, secret_key=key, empty_ok=empty_ok)
        return self._flat

    def masker(self) -> Masker:
        """The project's secret values, for every text this command prints (loads the project)."""
        if self._masker is None:
            self._masker = masker_for(self._flat or self.load())
        return self._masker

    def masker_if_loaded(self) -> Masker:
        """The masker once the project is loaded; before that no secret is known to anything."""
        return self.masker() if self._loaded is not None else NO_SECRETS


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def select_instances(
    flat: Flattened,
    names: list[str] | None = None,
    *,
    site: str | None = None,
    host: str | None = None,
) -> list[Instance]:
    """Instances matching every filter; a name is an instance (`svc@host`) or a service."""
    project = flat.loaded.project
    if site is not None and site not in project.sites:
        raise UsageError(f'unknown site "{site}"{_suggest(site, list(project.sites))}')
    chosen = list(flat.instances.values())
    if names:
        wanted: list[Instance] = []
        for name in names:
            found = [i for i in chosen if name in (i.name, i.service)]
            if not found:
                known = list(flat.instances) + list(project.services)
                raise UsageError(f'no instance or service "{name}"{_suggest(name, known)}')
            wanted.extend(i for i in found if i not in wanted)
        chosen = wanted
    if site is not None:
        chosen = [i for i in chosen if i.site == site]
    if host is not None:
        chosen = [i for i in chosen if i.host == host]
    return chosen


def find_instance(flat: Flattened, name: str) -> Instance:
    instance = flat.instances.get(name)
    if instance is None:
        raise UsageError(f'no instance "{name}"{_suggest(name, list(flat.instances))}')
    return instance


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    return f" (did you mean {', '.join(close)}?)" if close else ""


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
