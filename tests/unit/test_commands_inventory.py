"""The host tells which releases it has and which are linked; pruning spares the linked ones."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from shipyard.commands.inventory import (
    ReleaseEntry,
    ReleaseLinks,
    links_script,
    list_script,
    parse_links,
    parse_listing,
    plan_prune,
    prune_script,
)
from shipyard.commands.release import (
    ReleaseLayout,
    mark_complete_script,
    prepare_script,
    switch_current_script,
    switch_slot_script,
)
from shipyard.commands.script import Script, UnsafeValue


def sh(script: Script) -> str:
    result = subprocess.run(script.argv, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def complete(revision: str, mtime: int) -> ReleaseEntry:
    return ReleaseEntry(revision, complete=True, mtime=mtime)


def partial(revision: str, mtime: int) -> ReleaseEntry:
    return ReleaseEntry(revision, complete=False, mtime=mtime)


SIX = [complete(f"r{i}", 100 + i) for i in range(1, 7)]  # r6 newest

PRUNE_CASES = [
    pytest.param(SIX, 5, ReleaseLinks(current="r6", previous="r5"), (), ("r1",), id="keep-5-of-6"),
    pytest.param(SIX, 2, ReleaseLinks(), (), ("r1", "r2", "r3", "r4"), id="keep-2-no-links"),
    pytest.param(
        SIX,
        2,
        ReleaseLinks(current="r1", previous="r2"),
        (),
        ("r3", "r4"),
        id="rolled-back-to-old-ones-which-stay",
    ),
    pytest.param(
        SIX,
        1,
        ReleaseLinks(current="r6", blue="r2", green="r6"),
        (),
        ("r1", "r3", "r4", "r5"),
        id="slots-stay",
    ),
    pytest.param(
        SIX, 1, ReleaseLinks(current="r6"), ("r3",), ("r1", "r2", "r4", "r5"), id="also-keep"
    ),
    pytest.param(
        [*SIX[:2], partial("junk", 200), partial("r9", 50)],
        5,
        ReleaseLinks(current="r2"),
        ("r9",),
        ("junk",),
        id="partial-leftovers-go-unless-being-deployed",
    ),
    pytest.param(
        [complete("b", 100), complete("a", 100), complete("c", 100)],
        2,
        ReleaseLinks(),
        (),
        ("a",),
        id="same-time-ordered-by-name",
    ),
    pytest.param([], 5, ReleaseLinks(), (), (), id="nothing-there"),
]


@pytest.mark.parametrize(("entries", "keep", "links", "also_keep", "doomed"), PRUNE_CASES)
def test_pruning_keeps_the_newest_complete_releases_and_every_linked_one(
    entries: list[ReleaseEntry],
    keep: int,
    links: ReleaseLinks,
    also_keep: tuple[str, ...],
    doomed: tuple[str, ...],
) -> None:
    assert plan_prune(entries, keep=keep, links=links, also_keep=also_keep) == doomed


def test_keeping_no_release_is_refused() -> None:
    with pytest.raises(UnsafeValue, match="at least 1"):
        plan_prune(SIX, keep=0, links=ReleaseLinks())


@pytest.mark.parametrize(
    ("stdout", "entries"),
    [
        ("", ()),
        (
            "complete 100 a\npartial 300 b\ncomplete 200 c\n",
            (partial("b", 300), complete("c", 200), complete("a", 100)),
        ),
        ("garbage\ncomplete x a\nweird 1 b\ncomplete 5 ok\n", (complete("ok", 5),)),
    ],
    ids=["empty", "newest-first", "unreadable-lines-skipped"],
)
def test_a_listing_is_read_newest_first(stdout: str, entries: tuple[ReleaseEntry, ...]) -> None:
    assert parse_listing(stdout) == entries


@pytest.mark.parametrize(
    ("stdout", "links"),
    [
        ("current \nprevious \nblue \ngreen \n", ReleaseLinks()),
        (
            "current releases/r2\nprevious releases/r1\nblue ../releases/r1\ngreen \n",
            ReleaseLinks(current="r2", previous="r1", blue="r1"),
        ),
    ],
    ids=["nothing-linked", "linked"],
)
def test_links_are_read_as_revisions(stdout: str, links: ReleaseLinks) -> None:
    assert parse_links(stdout) == links


@pytest.fixture
def host(tmp_path: Path) -> ReleaseLayout:
    """A service with complete releases r1..r4 (r4 newest), an incomplete r5, current r4."""
    layout = ReleaseLayout(str(tmp_path), "api")
    for age, revision in enumerate(["r4", "r3", "r2", "r1", "r5"]):
        sh(prepare_script(layout, revision))
        if revision != "r5":
            sh(mark_complete_script(layout, revision))
            os.utime(layout.marker(revision), (1000 - age, 1000 - age))
    for revision in ["r3", "r4"]:
        sh(switch_current_script(layout, revision))
    sh(switch_slot_script(layout, "blue", "r1"))
    return layout


def test_the_host_lists_its_releases_and_links(host: ReleaseLayout) -> None:
    entries = parse_listing(sh(list_script(host)))
    links = parse_links(sh(links_script(host)))

    assert [(e.revision, e.complete) for e in entries][1:] == [
        ("r4", True),
        ("r3", True),
        ("r2", True),
        ("r1", True),
    ]
    assert entries[0] == ReleaseEntry("r5", False, entries[0].mtime)
    assert links == ReleaseLinks(current="r4", previous="r3", blue="r1")


def test_a_service_without_releases_lists_none(tmp_path: Path) -> None:
    layout = ReleaseLayout(str(tmp_path), "never-deployed")

    assert parse_listing(sh(list_script(layout))) == ()
    assert parse_links(sh(links_script(layout))) == ReleaseLinks()


def test_the_planned_prune_removes_what_it_planned(host: ReleaseLayout) -> None:
    entries = parse_listing(sh(list_script(host)))
    links = parse_links(sh(links_script(host)))
    doomed = plan_prune(entries, keep=1, links=links)

    removed = sh(prune_script(host, doomed)).split()

    assert removed == list(doomed) == ["r2", "r5"]
    assert sorted(os.listdir(host.releases)) == ["r1", "r3", "r4"]


def test_the_prune_script_spares_a_release_that_became_linked_since_the_plan(
    host: ReleaseLayout,
) -> None:
    removed = sh(prune_script(host, ["r1", "r2", "r3", "r4"])).split()

    assert removed == ["r2"]
    assert sorted(os.listdir(host.releases)) == ["r1", "r3", "r4", "r5"]


def test_pruning_nothing_does_nothing(host: ReleaseLayout) -> None:
    assert sh(prune_script(host, [])) == ""
    assert len(os.listdir(host.releases)) == 5
