"""The instance index (app/index.py): kept between runs, and made again whenever anything an
instance's revision comes from changes; always what flattening says."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from shipyard.app import index as index_module
from shipyard.app.session import Session

from .conftest import make_session

REPO = Path(__file__).resolve().parents[2]
HELLO = REPO / "examples" / "hello"
SECRET = """
secrets:
  token: {env: HELLO_TOKEN}
"""


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    root = tmp_path / "hello"
    shutil.copytree(HELLO, root)
    text = (root / "shipyard.yaml").read_text()
    text = text.replace("vars:\n", SECRET + "\nvars:\n", 1)
    text = text.replace(
        'RELEASE: "{{ release }}"', 'RELEASE: "{{ release }}"\n      TOKEN: "{{ secrets.token }}"'
    )
    (root / "shipyard.yaml").write_text(text)
    return root


def session(root: Path, token: str = "first-token") -> Session:
    return make_session(root, HELLO_TOKEN=token, SHIPYARD_DATABASE_URL=f"sqlite:///{root}/s.db")


def revisions(found: Session) -> tuple[dict[str, str], bool]:
    """The index's revisions and whether it was kept, beside a fresh flatten's, which agree."""
    made = found.index()
    with session(found.project_file.parent, found.env["HELLO_TOKEN"]) as other:
        flat = {n: i.revision for n, i in other.flatten().instances.items()}
    got = {n: p.revision for n, p in made.instances.items()}
    assert got == flat
    assert list(got) == list(flat)  # the service map's order
    return got, made.from_cache


def test_the_index_is_kept_and_used_while_nothing_changes(hello: Path) -> None:
    with session(hello) as first:
        made, kept = revisions(first)
    assert not kept
    assert (hello / ".shipyard" / "index.json").stat().st_mode & 0o777 == 0o600
    with session(hello) as again:
        same, kept = revisions(again)
    assert kept
    assert same == made
    with session(hello) as written:  # the store (here in the project directory) is no input
        written.store.append_audit(actor="t", action="test", target="-", result="ok", detail={})
    with session(hello) as after:
        assert revisions(after)[1]
    text = (hello / ".shipyard" / "index.json").read_text()
    assert "first-token" not in text  # a fingerprint is in its key, never a value


@pytest.mark.parametrize(
    "change",
    [
        "a value of the same length",
        "a template file",
        "a file of the artifact",
        "a secret",
        "an include outside the directory",
    ],
)
def test_any_change_an_instance_comes_from_makes_it_again(hello: Path, change: str) -> None:
    outside = hello.parent / "common.yaml"
    outside.write_text("sites: {}\n")
    text = (hello / "shipyard.yaml").read_text()
    (hello / "shipyard.yaml").write_text(
        text.replace("vars:\n", "include: [../common.yaml]\nvars:\n", 1)
    )
    with session(hello) as first:
        before, _ = revisions(first)
    token = "first-token"
    if change == "a value of the same length":
        text = (hello / "shipyard.yaml").read_text()
        (hello / "shipyard.yaml").write_text(text.replace("release: v1", "release: v2"))
    elif change == "a template file":
        (hello / "files" / "config.json.j2").write_text(
            (hello / "files" / "config.json.j2").read_text() + "\n"
        )
    elif change == "a file of the artifact":
        (hello / "app" / "server.py").write_text(
            (hello / "app" / "server.py").read_text() + "\n# changed\n"
        )
    elif change == "a secret":
        token = "other-token"
    else:
        outside.write_text("services:\n  extra: {template: hello, sites: [east]}\n")
    with session(hello, token) as after:
        found, kept = revisions(after)
    assert not kept
    assert found != before


def test_the_code_and_the_project_s_place_are_in_the_key(
    hello: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with session(hello) as first:
        revisions(first)
    monkeypatch.setattr(index_module, "_code_digest", lambda: b"another version of the code")
    with session(hello) as other_code:
        assert not revisions(other_code)[1]
    monkeypatch.undo()
    moved = tmp_path / "moved"
    shutil.copytree(hello, moved)  # its kept index comes along, made for the old place
    with session(moved) as there:
        assert not revisions(there)[1]  # hosts' default roots lie below the project


def test_a_big_project_or_an_unwritable_index_is_flattened_every_time(
    hello: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_module, "MAX_HASHED", 100)
    with session(hello) as big:
        assert not revisions(big)[1]
    assert not (hello / ".shipyard" / "index.json").exists()
    monkeypatch.undo()
    # Where the index would go, something that cannot be written over (a directory: root,
    # who runs the suite, may write anywhere a mode would refuse).
    (hello / ".shipyard" / "index.json").mkdir(parents=True)
    for _ in range(2):
        with session(hello) as read_only:
            assert not revisions(read_only)[1]


def test_a_kept_index_that_does_not_parse_is_made_again(hello: Path) -> None:
    with session(hello) as first:
        made, _ = revisions(first)
    (hello / ".shipyard" / "index.json").write_text('{"format": 1, "key": "x", "instances": [')
    with session(hello) as again:
        found, kept = revisions(again)
    assert not kept
    assert found == made
