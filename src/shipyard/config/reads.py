"""What a template reads: the variables it names and the members of them it reaches for.

`{{ db.host }}` reads `db.host`, not the whole of `db`; a bare `{{ db }}`, a loop over it, a
filter on it or a method call on it reads all of it. An instance keeps only what its templates
read, so a change elsewhere in a variable leaves its revision alone. The analysis may read more
than the template does (a local name that shadows a variable), never less.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import meta, nodes

VarPath = tuple[str | int, ...]  # a variable's name, then the members reached for


@dataclass(frozen=True)
class Reads:
    """What one template's own text reads, and the templates it names (None: computed)."""

    paths: frozenset[VarPath]
    templates: tuple[str | None, ...]

    @staticmethod
    def of(tree: nodes.Template) -> Reads:
        """Call before compiling: compiling rewrites the tree."""
        names = meta.find_undeclared_variables(tree)
        paths: set[VarPath] = set()
        _collect(tree, names, paths)
        return Reads(frozenset(paths), tuple(meta.find_referenced_templates(tree)))


def _access(node: nodes.Node) -> VarPath | None:
    """`a.b["c"]` -> ("a", "b", "c"); None when it is not constant access on a name."""
    if isinstance(node, nodes.Name):
        return (node.name,) if node.ctx == "load" else None
    if isinstance(node, nodes.Getattr):
        base = _access(node.node)
        return None if base is None else (*base, node.attr)
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        key = node.arg.value
        base = _access(node.node)
        if base is not None and isinstance(key, str | int) and not isinstance(key, bool):
            return (*base, key)
    return None


def _collect(node: nodes.Node, names: set[str], out: set[VarPath]) -> None:
    if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Getattr | nodes.Getitem):
        # `db.items()`: the method reads all of the value it is called on.
        owner = _access(node.node.node)
        if owner is not None:
            if owner[0] in names:
                out.add(owner)
            for child in node.iter_child_nodes(exclude=("node",)):
                _collect(child, names, out)
            return
    path = _access(node)
    if path is not None:
        if path[0] in names:
            out.add(path)
        return
    for child in node.iter_child_nodes():
        _collect(child, names, out)


# What a set of paths reads of each variable: its name -> the members below it that are read.
ByName = dict[str, list[VarPath]]


def by_name(paths: Iterable[VarPath]) -> ByName:
    """`paths` grouped by variable, for `used_variables` (group once, use for many)."""
    grouped: ByName = {}
    for path in paths:
        grouped.setdefault(str(path[0]), []).append(path[1:])
    return grouped


def used_variables(
    variables: Mapping[str, Any], paths: Iterable[VarPath] | ByName | None
) -> dict[str, Any]:
    """The part of `variables` that `paths` reach (all of it for None), in their order."""
    if paths is None:
        return dict(variables)
    grouped = paths if isinstance(paths, dict) else by_name(paths)
    return {k: _part(v, grouped[k]) for k, v in variables.items() if k in grouped}


def _part(value: Any, paths: list[VarPath]) -> Any:
    if not isinstance(value, dict) or () in paths:
        return value  # read whole, or a member of something that is not a mapping
    out: dict[str, Any] = {}
    for key, item in value.items():
        below = [p[1:] for p in paths if p[0] == key]
        if below:
            out[key] = _part(item, below)
    return out
