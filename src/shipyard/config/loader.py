"""Load a project: the main file and its includes, checked against the schema, errors located."""

from __future__ import annotations

import copy
import glob
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from shipyard.config.merge import strip_removals
from shipyard.config.models import NAME_PATTERN, Project, Service, Site, Template
from shipyard.config.yamlsource import REMOVE, PathKey, SourceMap, load_yaml
from shipyard.errors import ConfigError, Problem

# Sections that several files may contribute to, one named entry each.
NAMED_SECTIONS = ("sites", "templates", "services", "secrets", "vars", "artifacts")
# Sections only the main file may set.
MAIN_ONLY = ("name", "include", "ssh")
_NAME_CHECK = re.compile(NAME_PATTERN)
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class LoadedProject:
    """A valid project, the raw values it came from (with `!remove` marks) and their positions."""

    project: Project
    raw: dict[str, Any]
    marks: SourceMap
    file: Path
    root: Path  # the project directory: relative paths in the project are relative to it
    # Where the project's state lives (store, secret key, local hosts' default roots): the
    # project directory, unless these files are a copy of it (a server's config version).
    state_root: Path | None = None

    @property
    def home(self) -> Path:
        """The directory the project's state belongs to."""
        return self.state_root or self.root


def display_name(path: Path) -> str:
    """How a file is named in errors: relative to the working directory when it is below it."""
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)


def load_project(path: Path) -> LoadedProject:
    """Load and check `path` and its includes; raise ConfigError listing every problem found."""
    from shipyard.config.checks import check_project  # the semantic checks build on this module

    file = path.resolve()
    marks = SourceMap()
    problems: list[Problem] = []
    raw = _read_all(file, marks, problems)
    damaged: set[PathKey] = set()
    project = _validate_structure(raw, marks, problems, damaged)
    problems.extend(check_project(project, raw, marks, file.parent, frozenset(damaged)))
    if problems:
        raise ConfigError(_sorted_unique(problems))
    return LoadedProject(project=project, raw=raw, marks=marks, file=file, root=file.parent)


def _sorted_unique(problems: Iterable[Problem]) -> list[Problem]:
    seen: dict[Problem, None] = dict.fromkeys(problems)
    return sorted(seen, key=lambda p: (p.file, p.line, p.column, p.path, p.message))


def _read_all(file: Path, marks: SourceMap, problems: list[Problem]) -> dict[str, Any]:
    """The main file with its includes merged in, section by section."""
    if not file.exists():
        raise ConfigError(Problem(f"project file not found: {display_name(file)}"))
    main, found = load_yaml(file, display_name(file), marks)
    problems.extend(found)
    if main is None:
        raise ConfigError(problems)
    if not isinstance(main, dict):
        raise ConfigError(marks.problem((), "the project file must be a mapping"))
    includes = main.get("include", [])
    if not isinstance(includes, list):
        return main
    for index, pattern in enumerate(includes):
        if not isinstance(pattern, str):
            continue  # the schema check reports it
        matches = sorted(glob.glob(str(file.parent / pattern)))
        if not matches:
            problems.append(marks.problem(("include", index), f"no file matches {pattern!r}"))
        for match in matches:
            _merge_include(main, Path(match), marks, problems)
    return main


def _merge_include(
    main: dict[str, Any], path: Path, marks: SourceMap, problems: list[Problem]
) -> None:
    own = SourceMap()
    data, found = load_yaml(path, display_name(path), own)
    problems.extend(found)
    if data is None:
        return
    if not isinstance(data, dict):
        problems.append(own.problem((), "an included file must be a mapping"))
        return
    for section, entries in data.items():
        if section in MAIN_ONLY:
            problems.append(own.problem((section,), "may only be set in the main project file"))
            continue
        if section not in NAMED_SECTIONS:
            problems.append(own.problem((section,), "unknown field"))
            continue
        if not isinstance(entries, dict):
            problems.append(own.problem((section,), "must be a mapping"))
            continue
        target = main.setdefault(section, {})
        if not isinstance(target, dict):
            continue
        for name, value in entries.items():
            if name in target:
                first = marks.get((section, name))
                where = f" (first defined at {first.file}:{first.line})" if first else ""
                problems.append(own.problem((section, name), f"defined twice{where}"))
                continue
            target[name] = value
    marks.update(own)


def _validate_structure(
    raw: dict[str, Any], marks: SourceMap, problems: list[Problem], damaged: set[PathKey]
) -> Project:
    """Check every entry on its own, so that one bad entry does not hide the others.

    An entry with problems is kept without its bad members when the rest is valid; `damaged`
    gets its path, so the checks across entries do not report what follows from the damage.
    """
    top = {k: v for k, v in raw.items() if k not in ("sites", "templates", "services")}
    _reject_removals(top, (), marks, problems)
    project = _validate(Project, top, (), raw, marks, problems) or Project()
    parts: dict[str, dict[str, Any]] = {}
    for section, model in (("sites", Site), ("templates", Template), ("services", Service)):
        entries = raw.get(section, {})
        parts[section] = {}
        if not isinstance(entries, dict):
            problems.append(marks.problem((section,), "must be a mapping of names to entries"))
            continue
        for name, value in entries.items():
            path: PathKey = (section, name)
            if not _NAME_CHECK.match(name):
                problems.append(
                    marks.problem(path, f"invalid name {name!r} (letters, digits, '_', '.', '-')")
                )
                damaged.add(path)
                continue
            if section == "sites":
                _reject_removals(value, path, marks, problems)
            before = len(problems)
            checked = _validate(model, strip_removals(value), path, raw, marks, problems)
            if len(problems) > before:
                damaged.add(path)
            if checked is None and section == "templates" and isinstance(value, dict):
                # Keep a broken template known, so services using it are not reported too.
                lineage = {k: value[k] for k in ("extends", "locked") if k in value}
                checked = _validate(Template, lineage, path, raw, marks, [])
            if checked is not None:
                parts[section][name] = checked
    return project.model_copy(update=parts)


def _reject_removals(value: Any, path: PathKey, marks: SourceMap, problems: list[Problem]) -> None:
    if value is REMOVE:
        problems.append(marks.problem(path, "!remove is only allowed in templates and overrides"))
    elif isinstance(value, dict):
        for key, item in value.items():
            _reject_removals(item, (*path, key), marks, problems)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _reject_removals(item, (*path, index), marks, problems)


def _validate(
    model: type[M],
    value: Any,
    prefix: PathKey,
    raw: dict[str, Any],
    marks: SourceMap,
    problems: list[Problem],
) -> M | None:
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        for error in exc.errors():
            path = _real_path(raw, prefix, error["loc"], error["type"] == "missing")
            problems.append(marks.problem(path, _message(error)))
        return _salvage(model, value, exc)


def _salvage(model: type[M], value: Any, error: ValidationError) -> M | None:
    """The entry without its invalid members, if that is valid, else None (problems reported).

    Keeping the rest known (a host whose port is wrong still exists) stops one mistake from
    turning into others: services placed on that host are not then reported as misplaced.
    """
    current = copy.deepcopy(value)
    for _ in range(3):
        paths = {_real_path(current, (), e["loc"], False) for e in error.errors()}
        if () in paths or not paths:
            return None
        for path in sorted(paths, reverse=True):  # later list items first: indexes stay right
            _delete(current, path)
        try:
            return model.model_validate(current)
        except ValidationError as exc:
            error = exc
    return None


def _delete(node: Any, path: PathKey) -> None:
    for part in path[:-1]:
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    elif isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
        del node[path[-1]]


def _real_path(raw: Any, prefix: PathKey, loc: tuple[Any, ...], keep_last: bool) -> PathKey:
    """The error's location as a path into the data, without pydantic's union branch names."""
    node: Any = raw
    for part in prefix:
        node = node.get(part) if isinstance(node, dict) else None
    path = list(prefix)
    for i, part in enumerate(loc):
        is_key = isinstance(node, dict) and part in node
        if is_key or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif not (keep_last and i == len(loc) - 1):
            continue
        path.append(part)
    return tuple(path)


def _message(error: Any) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind == "string_pattern_mismatch":
        return f"invalid name {error['input']!r} (letters, digits, '_', '.', '-')"
    return message
