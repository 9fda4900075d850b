"""The audit log is a hash chain: a row changed, replaced, slipped in or removed is found.

The triggers stop an honest UPDATE or DELETE; these tests get past them as an attacker with the
database in hand would (INSERT OR REPLACE, a forged INSERT, triggers dropped or disabled) and
check that `verify_audit` names the first row that no longer holds.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError

from shipyard.store import ChainReport, Store, make_engine, open_store
from shipyard.store.engine import make_engine as engine_for
from shipyard.store.migrations import upgrade

from .builders import begin

WRITERS = 12
EACH = 5


def fill(store: Store, rows: int = 6) -> None:
    for n in range(rows):
        store.append_audit(actor="alice", action="lifecycle.restart", target=f"api@web-{n}",
                           result="ok", detail={"n": n})  # fmt: skip


def tamper(store: Store, *statements: str) -> ChainReport:
    """Run raw SQL as the database's owner would, then verify."""
    with store.engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)
    return store.verify_audit()


def broken_at(report: ChainReport) -> int:
    assert report.broken is not None, "the chain should be broken"
    return report.broken.row_id


def test_rows_written_every_way_form_one_whole_chain(store: Store) -> None:
    store.begin_rollout(rollout_id="r1", actor="alice", request="deploy", strategy="restart")
    begin(store, "d1")
    store.finish_deployment("d1", status="failed", error="boom")  # type: ignore[arg-type]
    fill(store, 3)
    report = store.verify_audit()
    assert report.whole
    assert report.count == len(store.audit()) == 6
    assert len(report.head) == 64


def test_an_empty_log_is_whole(store: Store) -> None:
    assert store.verify_audit() == ChainReport(0, "0" * 64, None)


def test_concurrent_writers_never_fork_the_chain(store_url: str) -> None:
    open_store(store_url).close()
    start = threading.Barrier(WRITERS)

    def writer(n: int) -> None:
        with Store(make_engine(store_url)) as own:
            own.last_event_id()  # connected before the barrier
            start.wait()
            for i in range(EACH):
                own.append_audit(actor=f"w{n}", action="x", target=f"t{i}", result="ok")

    with ThreadPoolExecutor(WRITERS) as pool:
        list(pool.map(writer, range(WRITERS)))
    with open_store(store_url) as store:
        report = store.verify_audit()
    assert report.whole
    assert report.count == WRITERS * EACH


REPLACE_ROW_3 = (
    "INSERT OR REPLACE INTO audit (id, at, actor, action, target, result, detail, prev_hash,"
    " hash) SELECT id, at, 'mallory', action, target, result, detail, prev_hash, hash"
    " FROM audit WHERE id = 3"
)


def test_sqlite_refuses_insert_or_replace_of_a_row(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        fill(store)
        with pytest.raises(DBAPIError, match="never replaced"):
            tamper(store, REPLACE_ROW_3)
        assert store.verify_audit().whole


def test_sqlite_insert_or_replace_past_the_triggers_is_found(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        fill(store)
        report = tamper(store, "DROP TRIGGER audit_no_replace", REPLACE_ROW_3)
        assert broken_at(report) == 3
        assert report.count == 2
        assert "changed after it was written" in str(report.broken)


def test_a_forged_insert_is_found(store: Store) -> None:
    fill(store)
    report = tamper(
        store,
        "INSERT INTO audit (id, at, actor, action, target, result, detail, prev_hash, hash)"
        " SELECT 7, at, 'mallory', 'deploy.finish', target, 'success', detail, hash, hash"
        " FROM audit WHERE id = 6",
    )
    assert broken_at(report) == 7
    assert report.count == 6


def test_a_genuine_row_copied_to_the_end_is_found(store: Store) -> None:
    fill(store)
    # Row 2 again, its hash and link and all, as if written once more after row 6.
    report = tamper(
        store,
        "INSERT INTO audit SELECT 100, at, actor, action, target, result, detail, prev_hash,"
        " hash FROM audit WHERE id = 2",
    )
    assert broken_at(report) == 100
    assert "does not match the hash of row 6" in str(report.broken)


def drop_triggers(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("DROP TRIGGER audit_no_update")
        conn.exec_driver_sql("DROP TRIGGER audit_no_delete")
    else:
        conn.exec_driver_sql("ALTER TABLE audit DISABLE TRIGGER audit_no_update_delete")


def test_an_update_with_the_triggers_dropped_is_found(store: Store) -> None:
    fill(store)
    with store.engine.begin() as conn:
        drop_triggers(conn)
        conn.execute(text("UPDATE audit SET result = 'ok, honest' WHERE id = 4"))
    assert broken_at(store.verify_audit()) == 4


def test_a_delete_with_the_triggers_dropped_is_found(store: Store) -> None:
    fill(store)
    with store.engine.begin() as conn:
        drop_triggers(conn)
        conn.execute(text("DELETE FROM audit WHERE id = 2"))
    report = store.verify_audit()
    assert broken_at(report) == 3
    assert "row 1" in str(report.broken)


def test_a_rewritten_detail_with_its_hash_kept_is_found(store: Store) -> None:
    fill(store)
    with store.engine.begin() as conn:
        drop_triggers(conn)
        conn.execute(text("UPDATE audit SET detail = :d WHERE id = 5"), {"d": '{"n":99}'})
    assert broken_at(store.verify_audit()) == 5


def test_unreadable_content_is_a_break_not_a_crash(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'state.db'}") as store:
        fill(store, 2)
        report = tamper(store, "DROP TRIGGER audit_no_update",
                        "UPDATE audit SET at = 'yesterday', detail = 'not json' WHERE id = 2")  # fmt: skip
        assert broken_at(report) == 2
        assert "cannot be read" in str(report.broken)


def test_rows_from_before_the_chain_are_chained_by_the_migration(store_url: str) -> None:
    old = engine_for(store_url)
    try:
        upgrade(old, "0001")
        with old.begin() as conn:
            for n in range(3):
                conn.execute(
                    text("INSERT INTO audit (at, actor, action, target, result, detail)"
                         " VALUES (:at, 'alice', 'deploy.begin', :t, 'pending', :d)"),
                    {"d": '{"n":1}', "at": f"2024-05-0{n + 1} 12:00:00.000000" if old.dialect.name == "sqlite"
                     else f"2024-05-0{n + 1} 12:00:00+00", "t": f"api@web-{n}"},
                )  # fmt: skip
    finally:
        old.dispose()
    with open_store(store_url) as store:
        fill(store, 2)
        report = store.verify_audit()
        assert report.whole
        assert report.count == 5
        assert [e.target for e in store.audit()][:3] == ["api@web-0", "api@web-1", "api@web-2"]
        with store.engine.begin() as conn, pytest.raises(DBAPIError, match="append-only"):
            conn.execute(text("UPDATE audit SET actor = 'x' WHERE id = 1"))


def run_cli(args: list[str], project: Path, url: str) -> tuple[int, str]:
    import subprocess
    import sys

    env = {**os.environ, "SHIPYARD_DATABASE_URL": url, "COLUMNS": "200", "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "shipyard", *args], cwd=project, env=env,
                          capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    return done.returncode, done.stdout + done.stderr


def test_shipyard_audit_verify_exits_1_naming_the_row(tmp_path: Path) -> None:
    import json

    url = f"sqlite:///{tmp_path / 'state.db'}"
    project = tmp_path / "project"
    project.mkdir()
    (project / "shipyard.yaml").write_text("name: p\nsites: {}\nservices: {}\n")
    with open_store(url) as store:
        fill(store, 4)
    code, out = run_cli(["audit", "verify"], project, url)
    assert (code, "audit log whole: 4 row(s)") == (0, out[: len("audit log whole: 4 row(s)")])
    code, out = run_cli(["audit", "verify", "--json"], project, url)
    assert code == 0
    assert json.loads(out)["count"] == 4
    with open_store(url) as store:
        tamper(store, "DROP TRIGGER audit_no_update", "UPDATE audit SET actor = 'x' WHERE id = 3")
    code, out = run_cli(["audit", "verify"], project, url)
    assert code == 1
    assert "audit log broken at row 3: its content does not match its hash" in out
    code, out = run_cli(["audit", "verify", "--json"], project, url)
    assert code == 1
    shown = json.loads(out)
    assert (shown["whole"], shown["count"], shown["broken"]["row"]) == (False, 2, 3)
