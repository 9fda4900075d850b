"""Typed differences between two flattened configs, with unified diffs for rendered files."""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from shipyard.config.render import MASK

Kind = Literal["added", "removed", "changed"]
MISSING: Any = object()
# What a file diff calls its two sides: an instance's diff compares what is deployed with what
# its templates derive; a diff of two config versions names the versions instead.
INSTANCE_SIDES = ("deployed", "derived")


@dataclass(frozen=True)
class DiffEntry:
    """One member that differs. `old`/`new` are absent (None) for added/removed members."""

    kind: Kind
    path: str
    old: Any = None
    new: Any = None
    unified: str | None = None  # for rendered files: a unified diff of their content

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "path": self.path}
        if self.kind != "added":
            out["old"] = self.old
        if self.kind != "removed":
            out["new"] = self.new
        if self.unified is not None:
            out["unified"] = self.unified
        return out


def diff_configs(
    old: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    *,
    old_secrets: Mapping[str, str] | None = None,
    new_secrets: Mapping[str, str] | None = None,
    sides: tuple[str, str] = INSTANCE_SIDES,
) -> list[DiffEntry]:
    """What changes from `old` (deployed) to `new` (derived); empty when they are equal.

    Maps are compared member by member; lists and scalars as whole values. A file's content is
    compared as text, its unified diff headed with `sides` (`--- deployed/app.ini`). Secrets
    are compared by fingerprint and always shown as `***`.
    """
    entries = list(_walk(old or {}, new or {}, (), sides))
    entries.extend(_secrets(old_secrets or {}, new_secrets or {}))
    return entries


def _walk(
    old: Mapping[str, Any], new: Mapping[str, Any], at: tuple[str, ...], sides: tuple[str, str]
) -> Iterator[DiffEntry]:
    for key in sorted(set(old) | set(new)):
        here = (*at, key)
        before, after = old.get(key, MISSING), new.get(key, MISSING)
        if before == after:
            continue
        if isinstance(before, dict) and isinstance(after, dict):
            yield from _walk(before, after, here, sides)
            continue
        path = _dotted(here)
        if before is MISSING:
            yield DiffEntry("added", path, new=after, unified=_file_diff(here, None, after, sides))
        elif after is MISSING:
            unified = _file_diff(here, before, None, sides)
            yield DiffEntry("removed", path, old=before, unified=unified)
        else:
            yield DiffEntry("changed", path, before, after, _file_diff(here, before, after, sides))


def _file_diff(path: tuple[str, ...], old: Any, new: Any, sides: tuple[str, str]) -> str | None:
    """A unified diff when `path` is a rendered file (files.<dest>) or its content."""
    if len(path) == 2 and path[0] == "files":
        name = path[1]
        old = old.get("content") if isinstance(old, dict) else old
        new = new.get("content") if isinstance(new, dict) else new
    elif len(path) == 3 and path[0] == "files" and path[2] == "content":
        name = path[1]
    else:
        return None
    if not isinstance(old, str | None) or not isinstance(new, str | None):
        return None
    lines = difflib.unified_diff(
        (old or "").splitlines(keepends=True),
        (new or "").splitlines(keepends=True),
        fromfile=f"{sides[0]}/{name}" if old is not None else "/dev/null",
        tofile=f"{sides[1]}/{name}" if new is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def _secrets(old: Mapping[str, str], new: Mapping[str, str]) -> Iterator[DiffEntry]:
    for name in sorted(set(old) | set(new)):
        path = f"secrets.{name}"
        if name not in old:
            yield DiffEntry("added", path, new=MASK)
        elif name not in new:
            yield DiffEntry("removed", path, old=MASK)
        elif old[name] != new[name]:
            yield DiffEntry("changed", path, MASK, MASK)


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path)
