"""Plans: dependency waves, staleness and typed diffs."""

from __future__ import annotations

import pytest

from shipyard.config.graph import dependents, find_cycle, waves
from shipyard.plan.diff import DiffEntry, diff_configs
from shipyard.plan.rollout import Target, make_plan


@pytest.mark.parametrize(
    ("edges", "expected"),
    [
        ({"a": []}, [["a"]]),
        ({"api": ["db"], "db": [], "web": ["api"]}, [["db"], ["api"], ["web"]]),
        ({"a": ["c"], "b": ["c"], "c": [], "d": ["a", "b"]}, [["c"], ["a", "b"], ["d"]]),
        ({"a": [], "b": []}, [["a", "b"]]),
        ({"a": ["gone"]}, [["a"]]),
    ],
)
def test_every_service_comes_after_what_it_depends_on(
    edges: dict[str, list[str]], expected: list[list[str]]
) -> None:
    assert waves(edges) == expected


def test_cycles_are_named_in_order() -> None:
    assert find_cycle({"a": ["b"], "b": ["c"], "c": ["a"]}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": ["b"], "b": []}) is None


def test_dependents_are_transitive() -> None:
    edges = {"db": [], "api": ["db"], "web": ["api"], "cron": []}
    assert dependents(edges, {"db"}) == {"api", "web"}


def test_plan_orders_instances_and_marks_what_is_stale() -> None:
    targets = [
        Target("api@h1", "api", "h1", "s", "r2"),
        Target("db@h1", "db", "h1", "s", "r1"),
        Target("api@h2", "api", "h2", "s", "r3"),
    ]
    plan = make_plan(
        targets, {"api": ["db"], "db": []}, {"db@h1": "r1", "api@h1": "r1", "old@h1": "x"}
    )
    assert [[s.name for s in wave] for wave in plan.waves] == [["db@h1"], ["api@h1", "api@h2"]]
    assert [s.action for s in plan.steps] == ["none", "update", "create"]
    assert plan.orphans == ("old@h1",)
    assert [s.name for s in plan.changes] == ["api@h1", "api@h2"]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"a": 1}, {"a": 1}, []),
        ({}, {"a": 1}, [DiffEntry("added", "a", new=1)]),
        ({"a": 1}, {}, [DiffEntry("removed", "a", old=1)]),
        (
            {"env": {"A": "1", "B": "2"}},
            {"env": {"A": "1", "B": "3"}},
            [DiffEntry("changed", "env.B", "2", "3")],
        ),
        ({"cmd": ["a", "b"]}, {"cmd": ["a"]}, [DiffEntry("changed", "cmd", ["a", "b"], ["a"])]),
        ({"x": {"y": 1}}, {"x": 2}, [DiffEntry("changed", "x", {"y": 1}, 2)]),
    ],
)
def test_diff_entries_are_typed(
    old: dict[str, object], new: dict[str, object], expected: list[DiffEntry]
) -> None:
    assert diff_configs(old, new) == expected


def test_rendered_files_get_a_unified_diff() -> None:
    old = {"files": {"app.ini": {"source": "t", "content": "a = 1\nb = 2\n"}}}
    new = {"files": {"app.ini": {"source": "t", "content": "a = 1\nb = 3\n"}}}
    (entry,) = diff_configs(old, new)
    assert entry.path == "files.app.ini.content"
    assert entry.unified == (
        "--- deployed/app.ini\n+++ derived/app.ini\n@@ -1,2 +1,2 @@\n a = 1\n-b = 2\n+b = 3\n"
    )


def test_a_file_diff_names_the_sides_it_is_given() -> None:
    one, none = {"files": {"app.ini": "a = 1\n"}}, {"files": {}}
    (entry,) = diff_configs(one, none, sides=("version 3", "version 5"))
    assert entry.unified is not None
    assert entry.unified.startswith("--- version 3/app.ini\n+++ /dev/null\n")
    (entry,) = diff_configs(none, one, sides=("version 3", "version 5"))
    assert entry.unified is not None
    assert entry.unified.startswith("--- /dev/null\n+++ version 5/app.ini\n")


def test_secret_changes_show_only_masks() -> None:
    entries = diff_configs({}, {}, old_secrets={"t": "f1"}, new_secrets={"t": "f2", "u": "f3"})
    assert [e.as_json() for e in entries] == [
        {"kind": "changed", "path": "secrets.t", "old": "***", "new": "***"},
        {"kind": "added", "path": "secrets.u", "new": "***"},
    ]
