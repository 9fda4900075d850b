"""Config versions in the store: content-addressed blobs, one row per distinct content."""

from __future__ import annotations

import pytest

from shipyard.errors import RecordNotFound
from shipyard.store import Store
from shipyard.store.versions import ConfigVersion


def publish(
    store: Store, files: dict[str, bytes], version_hash: str, source: str = "upload"
) -> tuple[ConfigVersion, bool]:
    return store.publish_version(
        version_hash=version_hash, files=files, source=source, message="m", actor="alice"
    )


def test_a_published_version_keeps_its_files_and_who_published_it(store: Store) -> None:
    made, created = publish(store, {"shipyard.yaml": b"a: 1\n", "app/x": b"\x00\x01"}, "h1")
    assert created
    assert (made.id, made.source, made.published_by) == (1, "upload", "alice")
    assert store.version_files(made.id) == {"app/x": b"\x00\x01", "shipyard.yaml": b"a: 1\n"}
    assert store.version(1) == made


def test_publishing_the_same_content_again_returns_the_version_it_made(store: Store) -> None:
    first, _ = publish(store, {"shipyard.yaml": b"a: 1\n"}, "h1")
    again, created = publish(store, {"shipyard.yaml": b"a: 1\n"}, "h1", source="reload")
    assert (again, created) == (first, False)
    assert len(store.versions()) == 1


def test_identical_files_share_one_blob_across_versions(store: Store) -> None:
    publish(store, {"shipyard.yaml": b"a: 1\n", "big": b"same"}, "h1")
    publish(store, {"shipyard.yaml": b"a: 2\n", "big": b"same"}, "h2")
    with store.engine.connect() as conn:
        blobs = conn.exec_driver_sql("SELECT count(*) FROM config_blobs").scalar_one()
    assert blobs == 3
    assert store.version_files(2)["big"] == b"same"


def test_versions_are_listed_newest_first_a_page_at_a_time(store: Store) -> None:
    for n in range(1, 4):
        publish(store, {"f": str(n).encode()}, f"h{n}")
    assert [v.id for v in store.versions()] == [3, 2, 1]
    assert [v.id for v in store.versions(limit=1, before=3)] == [2]
    newest = store.newest_version()
    assert newest is not None
    assert newest.id == 3


def test_each_publish_is_audited(store: Store) -> None:
    publish(store, {"f": b"x"}, "h1")
    [line] = [e for e in store.audit() if e.action == "config.publish"]
    assert (line.actor, line.target, line.detail["hash"]) == ("alice", "version:1", "h1")


def test_an_unknown_version_is_not_found(store: Store) -> None:
    with pytest.raises(RecordNotFound):
        store.version(7)
    with pytest.raises(RecordNotFound):
        store.version_files(7)


def test_a_rollout_records_the_config_version_it_deployed_from(store: Store) -> None:
    made = store.begin_rollout(
        rollout_id="r1", actor="a", request="deploy", strategy="restart", config_version=4
    )
    assert made.config_version == 4
    plain = store.begin_rollout(rollout_id="r2", actor="a", request="deploy", strategy="restart")
    assert plain.config_version is None


def test_the_served_version_is_one_row_that_names_a_known_version(store: Store) -> None:
    assert store.served_version() is None
    one, _ = publish(store, {"shipyard.yaml": b"a: 1\n"}, "h1")
    two, _ = publish(store, {"shipyard.yaml": b"a: 2\n"}, "h2")
    store.serve_version(two.id, by="a")
    assert store.served_version() == two.id
    store.serve_version(one.id, by="b")  # an older one served again (the same content re-published)
    assert store.served_version() == one.id
    with pytest.raises(RecordNotFound):
        store.serve_version(99, by="a")
    assert store.served_version() == one.id
