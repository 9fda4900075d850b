"""Directed graphs of names: cycles (named, in order) and dependency waves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def find_cycle(edges: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A cycle as a path that ends where it starts (`[a, b, a]`), or None.

    Targets that are not nodes are ignored.
    """
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state:
                found = visit(target)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def waves(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Layers in which every node comes after everything it depends on; each layer sorted.

    `edges[a]` lists what `a` depends on. The graph must be acyclic (see `find_cycle`).
    """
    level: dict[str, int] = {}

    def depth(node: str, seen: tuple[str, ...]) -> int:
        if node in level:
            return level[node]
        if node in seen:
            raise ValueError(f"dependency cycle through {node}")
        deps = [d for d in edges.get(node, ()) if d in edges]
        value = 1 + max((depth(d, (*seen, node)) for d in deps), default=-1)
        level[node] = value
        return value

    for node in edges:
        depth(node, ())
    layers: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for node, value in level.items():
        layers[value].append(node)
    return [sorted(layer) for layer in layers]


def dependents(edges: Mapping[str, Sequence[str]], roots: set[str]) -> set[str]:
    """Every node that depends, directly or not, on one of `roots` (the roots excluded)."""
    reverse: dict[str, list[str]] = {}
    for node, deps in edges.items():
        for dep in deps:
            reverse.setdefault(dep, []).append(node)
    found: set[str] = set()
    todo = list(roots)
    while todo:
        for child in reverse.get(todo.pop(), ()):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found - roots
