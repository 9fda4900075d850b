"""Properties: revisions are stable under key order and change with any value; self-diffs are empty."""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.config.flatten import revision_of
from shipyard.plan.diff import diff_configs

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=8))
configs = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
).filter(lambda v: isinstance(v, dict))


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict) and value:
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list) and value:
        return [p for i, v in enumerate(value) for p in _leaves(v, (*path, i))]
    return [path] if path else []


def _changed(value: Any, path: tuple[Any, ...]) -> Any:
    if not path:
        return ["changed", value]
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _changed(value[head], rest)}
    copy = list(value)
    copy[head] = _changed(copy[head], rest)
    return copy


@settings(max_examples=200, deadline=None)
@given(configs, st.randoms())
def test_revision_is_stable_under_key_order(config: dict[str, Any], rng: random.Random) -> None:
    assert revision_of(config, {}) == revision_of(_shuffled(config, rng), {})


@settings(max_examples=200, deadline=None)
@given(configs, st.data())
def test_any_value_change_changes_the_revision(config: dict[str, Any], data: st.DataObject) -> None:
    leaves = _leaves(config)
    if not leaves:
        return
    path = data.draw(st.sampled_from(leaves))
    assert revision_of(_changed(config, path), {}) != revision_of(config, {})


@settings(max_examples=200, deadline=None)
@given(configs)
def test_diff_of_a_config_with_itself_is_empty(config: dict[str, Any]) -> None:
    assert diff_configs(config, config) == []


@given(st.text(min_size=1, max_size=10), st.text(max_size=10), st.text(max_size=10))
def test_a_secret_change_changes_the_revision(name: str, old: str, new: str) -> None:
    from shipyard.config.render import fingerprint

    same = revision_of({}, {name: fingerprint(name, old, b"k" * 16)})
    other = revision_of({}, {name: fingerprint(name, new, b"k" * 16)})
    assert (same == other) == (old == new)
