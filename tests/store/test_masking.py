"""The store masks every known secret value in the free text it writes, on every write path.

A sentinel secret goes into every free-text argument the store takes (rollout request and
summary, deployment detail and errors one at a time and in batches, audit detail, event
payloads); afterwards it is nowhere in the database: not in any column, and on SQLite not in the
file nor in its WAL.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Connection, inspect, text

from shipyard.events import Event, Phase
from shipyard.masking import Masker
from shipyard.store import (
    DeploymentRequest,
    DeploymentStatus,
    Finish,
    RolloutStatus,
    Store,
    open_store,
    utc_now,
)

from .builders import begin, config

SENTINEL = "s3ntinel-Hunter2-value"
SAID = f"install printed PASSWORD={SENTINEL} and\nthen {SENTINEL}, twice"


def write_everything(store: Store) -> None:
    store.begin_rollout(rollout_id="r1", actor="alice", request=f"deploy {SENTINEL}", strategy="x")
    store.begin_deployment(
        deployment_id="d1", instance="api@web-1", service="api", host="web-1", site="eu",
        revision="rev1", actor="alice", owner_host="c", owner_pid=os.getpid(),
        detail={"note": SENTINEL, "nested": [{"deep": f"x{SENTINEL}y"}]},
    )  # fmt: skip
    store.mark_in_progress("d1")
    store.finish_deployment("d1", status=DeploymentStatus.FAILED, error=SAID)
    requests = [
        DeploymentRequest(f"b{n}", f"api@web-{n}", "api", f"web-{n}", "eu", "rev2") for n in (2, 3)
    ]
    store.begin_deployments(requests, actor="bob", owner_host="c", owner_pid=os.getpid())
    store.mark_in_progress_many(["b2", "b3"])
    store.finish_deployments(
        [
            Finish("b2", DeploymentStatus.FAILED, error=f"health check {SENTINEL} failed"),
            Finish("b3", DeploymentStatus.SUCCESS, snapshot=config("rev2")),
        ]
    )
    begin(store, "d4", "api@web-4")
    store.finish_deployment("d4", status=DeploymentStatus.FAILED, error=SENTINEL)
    store.append_audit(actor="alice", action="artifact.upload", target="api", result="ok",
                       detail={SENTINEL: f"key too {SENTINEL}"})  # fmt: skip
    store.append_events([Event(Phase.FINISHED, utc_now(), "r1", detail=f">>{SENTINEL}<<")])
    store.finish_rollout("r1", status=RolloutStatus.FAILED, summary={"why": SAID})


def test_no_secret_value_reaches_any_column(store_url: str) -> None:
    with open_store(store_url, masker=Masker([SENTINEL])) as store:
        write_everything(store)
        failed = store.deployment("d1")
        assert failed is not None
        assert failed.error is not None
        assert failed.error.startswith("install printed PASSWORD=*** and")
        assert store.verify_audit().whole  # the hash covers the masked text, as stored
        with store.engine.connect() as conn:
            dump = everything_stored(conn)
    assert "***" in dump
    assert SENTINEL not in dump


def everything_stored(conn: Connection) -> str:
    """Every value of every row of every table, as text."""
    parts = []
    for table in inspect(conn).get_table_names():
        for row in conn.execute(text(f'SELECT * FROM "{table}"')):
            parts.extend(str(value) for value in row)
    return "\n".join(parts)


def test_the_sqlite_file_and_its_wal_hold_no_secret(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with open_store(f"sqlite:///{path}", masker=Masker([SENTINEL])) as store:
        write_everything(store)
        wal = path.with_name("state.db-wal")
        assert wal.exists()  # still open: what was written is (partly) in the WAL
        files = [path.read_bytes(), wal.read_bytes()]
    files.append(path.read_bytes())
    for content in files:
        assert SENTINEL.encode() not in content


def test_without_a_masker_the_text_is_kept_verbatim(store: Store) -> None:
    begin(store, "d1")
    found = store.finish_deployment("d1", status=DeploymentStatus.FAILED, error=SAID)
    assert found.error == SAID
