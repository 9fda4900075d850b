"""Deep merge of configuration layers: maps merge, lists and scalars replace, `!remove` deletes.

Every member of the result remembers which layer set it (its origin), so that an error about a
merged value can point at the line that wrote it.
"""

from __future__ import annotations

from typing import Any

from shipyard.config.yamlsource import REMOVE, PathKey

Origins = dict[tuple[str, ...], PathKey]


def merge_layer(
    base: dict[str, Any],
    layer: dict[str, Any],
    origins: Origins,
    source: PathKey,
    at: tuple[str, ...] = (),
) -> dict[str, Any]:
    """`layer` merged over `base` (neither changes); records the origin of what `layer` sets."""
    out = dict(base)
    for key, value in layer.items():
        here = (*at, key)
        if value is REMOVE:
            out.pop(key, None)
            _forget(origins, here)
            continue
        current = out.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            out[key] = merge_layer(current, value, origins, source, here)
        else:
            out[key] = strip_removals(value)
            _forget(origins, here)
            origins[here] = (*source, *here)
    return out


def origin_of(origins: Origins, path: tuple[str, ...]) -> PathKey:
    """The source path of a merged member: its own origin or its nearest ancestor's, extended."""
    for end in range(len(path), 0, -1):
        found = origins.get(path[:end])
        if found is not None:
            return (*found, *path[end:])
    return path


def deep_merge(*layers: dict[str, Any]) -> dict[str, Any]:
    """Merge plain layers, later ones winning, without tracking origins."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            current = out.get(key)
            if isinstance(value, dict) and isinstance(current, dict):
                out[key] = deep_merge(current, value)
            else:
                out[key] = value
    return out


def _forget(origins: Origins, path: tuple[str, ...]) -> None:
    if any(len(k) > len(path) and k[: len(path)] == path for k in origins):
        for k in [k for k in origins if k[: len(path)] == path]:
            del origins[k]
    origins.pop(path, None)


def strip_removals(value: Any) -> Any:
    """A copy without `!remove` members (for a value that replaces rather than merges)."""
    if isinstance(value, dict):
        return {k: strip_removals(v) for k, v in value.items() if v is not REMOVE}
    if isinstance(value, list):
        return [strip_removals(v) for v in value if v is not REMOVE]
    return value
