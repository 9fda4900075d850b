"""YAML with source positions: every mapping key and value is located by its field path."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from shipyard.config.textfile import UnreadableText, read_text
from shipyard.errors import Problem

PathKey = tuple[str | int, ...]
# Bounds on what one file may build: a few hundred bytes of nested aliases would otherwise
# expand into billions of values (an "alias bomb"), and nesting deeper than this is no config.
MAX_ALIAS_VALUES = 100_000
MAX_DEPTH = 100

try:  # libyaml parses several times faster; the pure-Python loader is the fallback.
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[assignment]
except AttributeError:  # pragma: no cover - depends on how PyYAML was built
    _Loader = yaml.SafeLoader


class Removed:
    """The value of `!remove`: deletes the member it replaces when configs are merged."""

    _instance: Removed | None = None

    def __new__(cls) -> Removed:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "!remove"


REMOVE = Removed()


@dataclass(frozen=True)
class Mark:
    """Where a value was written: file, 1-based line and column."""

    file: str
    line: int
    column: int


def format_path(path: PathKey) -> str:
    """`("services", "api", "depends_on", 1)` -> `services.api.depends_on[1]`."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


class SourceMap:
    """Field path -> where it was written, for every key and value of the loaded files."""

    def __init__(self) -> None:
        self._marks: dict[PathKey, Mark] = {}

    def add(self, path: PathKey, mark: Mark) -> None:
        self._marks[path] = mark

    def get(self, path: PathKey) -> Mark | None:
        return self._marks.get(path)

    def nearest(self, path: PathKey) -> Mark | None:
        """The mark of `path`, or of its closest ancestor that has one."""
        for end in range(len(path), -1, -1):
            mark = self._marks.get(path[:end])
            if mark is not None:
                return mark
        return None

    def problem(self, path: PathKey, message: str) -> Problem:
        mark = self.nearest(path)
        if mark is None:
            return Problem(message=message, path=format_path(path))
        return Problem(
            message=message,
            path=format_path(path),
            file=mark.file,
            line=mark.line,
            column=mark.column,
        )

    def update(self, other: SourceMap, prefix: PathKey = ()) -> None:
        for path, mark in other._marks.items():
            self._marks[prefix + path] = mark


def _mark(file: str, node: yaml.Node) -> Mark:
    return Mark(file, node.start_mark.line + 1, node.start_mark.column + 1)


class _TooLarge(Exception):
    """Building stopped at a bound; carries where."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


class _Builder:
    """Turns a composed YAML node tree into plain Python values, recording every position.

    An alias is the same node object met again; every value built through one counts against
    MAX_ALIAS_VALUES, so expansion is bounded however the aliases nest (or refer to themselves).
    """

    def __init__(self, file: str, loader: yaml.SafeLoader, marks: SourceMap) -> None:
        self.file = file
        self.loader = loader
        self.marks = marks
        self.problems: list[Problem] = []
        self._built: set[int] = set()
        self._building: set[int] = set()  # collections being built: an alias back is a loop
        self._aliased = 0

    def build(self, node: yaml.Node, path: PathKey, used_at: yaml.Node | None = None) -> Any:
        """`used_at` is the key under which the value is written (where an alias is used)."""
        if id(node) in self._building:
            self._stop(
                used_at or node, path, "an alias refers to the value that contains it (a loop)"
            )
        if id(node) in self._built:
            self._aliased += 1
            if self._aliased > MAX_ALIAS_VALUES:
                self._stop(
                    used_at or node,
                    path,
                    f"too large: aliases expand to more than {MAX_ALIAS_VALUES} values",
                )
        else:
            self._built.add(id(node))
        if len(path) > MAX_DEPTH:
            self._stop(
                used_at or node, path, f"too large: nested more than {MAX_DEPTH} levels deep"
            )
        self.marks.add(path, _mark(self.file, node))
        if node.tag == "!remove":
            return REMOVE
        if isinstance(node, yaml.CollectionNode):
            self._building.add(id(node))
            try:
                return self._collection(node, path)
            finally:
                self._building.discard(id(node))
        value = self.loader.construct_object(node)
        if isinstance(value, date):  # keep values JSON-native: dates become ISO strings
            return value.isoformat()
        if isinstance(value, bytes):
            self._fail(node, path, "binary values are not supported")
            return None
        return value

    def _collection(self, node: yaml.CollectionNode, path: PathKey) -> Any:
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    self._fail(key_node, path, "merge keys (<<) are not supported; use templates")
                    continue
                key = self.loader.construct_object(key_node)
                if not isinstance(key, str | int | float | bool):
                    self._fail(key_node, path, "keys must be plain scalars")
                    continue
                key = str(key)
                if key in out:
                    first = self.marks.get((*path, key))
                    where = f" (first at line {first.line})" if first else ""
                    self._fail(key_node, (*path, key), f"duplicate key{where}")
                    continue
                out[key] = self.build(value_node, (*path, key), key_node)
                if not isinstance(value_node, yaml.ScalarNode):
                    # A scalar is best shown where it is; a block where its key is.
                    self.marks.add((*path, key), _mark(self.file, key_node))
            return out
        return [self.build(item, (*path, i), None) for i, item in enumerate(node.value)]

    def _stop(self, node: yaml.Node, path: PathKey, message: str) -> None:
        mark = _mark(self.file, node)
        raise _TooLarge(Problem(message, format_path(path), mark.file, mark.line, mark.column))

    def _fail(self, node: yaml.Node, path: PathKey, message: str) -> None:
        mark = _mark(self.file, node)
        self.problems.append(Problem(message, format_path(path), mark.file, mark.line, mark.column))


def _remove_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> Removed:
    return REMOVE


class _TaggedLoader(_Loader):  # type: ignore[misc, valid-type]
    """The safe loader plus `!remove`."""


_TaggedLoader.add_constructor("!remove", _remove_constructor)


def load_yaml(path: Path, display: str, marks: SourceMap) -> tuple[Any, list[Problem]]:
    """Parse one file into plain values; positions go into `marks` under `display` as file name."""
    try:
        text = read_text(path)
    except OSError as exc:
        return None, [Problem(f"cannot read file: {exc.strerror}", file=display)]
    except UnreadableText as exc:
        return None, [Problem(exc.message, "", display, exc.line, exc.column)]
    loader = _TaggedLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return {}, []
        builder = _Builder(display, loader, marks)
        value = builder.build(node, ())
        return value, builder.problems
    except _TooLarge as exc:
        return None, [exc.problem]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        return None, [Problem(f"invalid YAML: {exc.problem}", "", display, line, column)]
    finally:
        loader.dispose()
