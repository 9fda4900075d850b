"""The site event log in the store: pages of 500 newest first by cursor, its filters, keyword
search in the database's own text search (hostile words stay words), the purge a bounded batch
a transaction, and migration 0008 over events stored before it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select, text

from shipyard.events import Event, Phase, Severity
from shipyard.masking import MASK, Masker
from shipyard.store import EventFilter, Store, make_engine, open_store
from shipyard.store.eventlog import fts5_query, search_words, tsquery
from shipyard.store.migrations import upgrade
from shipyard.store.tables import events

AT = datetime(2026, 12, 1, tzinfo=UTC)


def site_event(n: int, site: str = "eu", **fields: object) -> Event:
    """The n-th of a run of events, a minute apart: a deployment's end on host web-n."""
    made: dict[str, object] = {
        "phase": Phase.FINISHED, "at": AT + timedelta(minutes=n), "instance": f"api@web-{n}",
        "site": site, "host": f"web-{n}", "result": "success", "detail": f"deployed r{n}",
    }  # fmt: skip
    made.update(fields)
    return Event(**made)  # type: ignore[arg-type]


def ids(found: list[Event]) -> list[int]:
    return [e.id for e in found]


def pages(store: Store, where: EventFilter | None = None) -> Iterator[list[Event]]:
    before = None
    while page := store.event_log(before_id=before, where=where):
        yield page
        if len(page) < 500:
            return
        before = page[-1].id


def test_the_log_comes_500_a_page_newest_first_and_the_cursor_sees_each_event_once(
    store: Store,
) -> None:
    stored = store.append_events([site_event(n) for n in range(1203)])
    found = list(pages(store))
    assert [len(p) for p in found] == [500, 500, 203]
    seen = [e.id for page in found for e in page]
    assert seen == sorted(stored, reverse=True)
    assert found[0][0].severity is Severity.INFO
    assert found[0][0].source == "instance api@web-1202"


def test_the_filters_keep_a_sites_events_from_a_severity_on_between_two_times(
    store: Store,
) -> None:
    store.append_events(
        [
            site_event(1),
            site_event(2, result="failed", detail="health check failed"),
            site_event(3, site="us", result="failed"),
            site_event(4, phase=Phase.DRIFT, result=None, detail="current moved"),
            site_event(5, phase=Phase.HOST_ERROR, instance=None, result=None, detail="no answer"),
            Event(Phase.ROLLOUT_STARTED, AT, "r1", detail="deploy api"),
        ]
    )

    def hosts(**wanted: object) -> list[str | None]:
        return [e.host for e in store.event_log(where=EventFilter(**wanted))]  # type: ignore[arg-type]

    assert hosts(site="eu") == ["web-5", "web-4", "web-2", "web-1"]
    assert hosts(site="eu", severity=Severity.WARNING) == ["web-5", "web-4", "web-2"]
    assert hosts(severity=Severity.ERROR) == ["web-5", "web-3", "web-2"]
    assert hosts(sites={"us"}) == ["web-3"]
    assert hosts(sites=set()) == []
    assert hosts(since=AT + timedelta(minutes=2), until=AT + timedelta(minutes=4)) == [
        "web-4", "web-3", "web-2",
    ]  # fmt: skip
    assert hosts(source="host web-5") == ["web-5"]
    [started] = store.event_log(where=EventFilter(source="rollout r1"))
    assert (started.severity, started.site) == (Severity.INFO, None)


def test_a_search_needs_every_word_and_takes_the_last_as_a_prefix(store: Store) -> None:
    store.append_events(
        [
            site_event(1, detail="health check returned 503 on db.internal"),
            site_event(2, detail="health check passed"),
            site_event(3, phase=Phase.ARTIFACT, instance=None, subject="certs", detail="pushed"),
        ]
    )

    def found(words: str) -> list[str | None]:
        return [e.host for e in store.event_log(where=EventFilter(search=words))]

    assert found("health check") == ["web-2", "web-1"]
    assert found("HEALTH 503") == ["web-1"]
    assert found("health pass") == ["web-2"]  # the last word, a prefix
    assert found("heal passed") == []  # any other word, whole
    assert found("internal") == ["web-1"]  # db.internal is two words
    assert found("api web 2") == ["web-2"]  # the source is searched too
    assert found("artifact certs") == ["web-3"]
    [artifact] = store.event_log(where=EventFilter(search="certs"))
    assert artifact.subject == "certs"
    assert found("health nowhere") == []


HOSTILE = ['"', "*", "OR", "-x", "a:b", "'", "\\", "NEAR(a b)", "a & !b | c:*", "):*", "'''", "^a"]


@pytest.mark.parametrize("words", HOSTILE)
def test_hostile_search_input_is_only_words_never_query_syntax(store: Store, words: str) -> None:
    store.append_events(
        [
            site_event(1, detail='quoted "a" b:c -x OR'),
            site_event(2, detail="café ünïcode résumé"),
            site_event(3, detail="nothing else"),
        ]
    )
    found = store.event_log(where=EventFilter(search=words))
    wanted = search_words(words)
    for event in found:
        text_ = f"{event.message} {event.source}".lower()
        assert all(w in text_ for w in wanted), (words, event)
    if not wanted:
        assert found == []


def test_searches_in_other_scripts_and_operators_as_words(store: Store) -> None:
    store.append_events(
        [
            site_event(1, detail='quoted "a" b:c -x OR'),
            site_event(2, detail="café ünïcode résumé Größe"),
            site_event(3, detail="nothing else"),
        ]
    )

    def found(words: str) -> list[str | None]:
        return [e.host for e in store.event_log(where=EventFilter(search=words))]

    assert found("OR") == ["web-1"]  # a word, not FTS5's operator
    assert found("-x") == ["web-1"]  # x, not "without x"
    assert found("b:c") == ["web-1"]
    assert found('"quoted') == ["web-1"]
    assert found("café") == ["web-2"]
    assert found("ÜNÏCODE") == ["web-2"]
    assert found("gröss größe") == []
    assert found("größ") == ["web-2"]
    assert found("*") == []


def test_the_words_are_quoted_terms_for_each_database() -> None:
    words = search_words('api "web-1" OR:* ')
    assert words == ("api", "web", "1", "or")
    assert fts5_query(words) == '"api" "web" "1" "or"*'
    assert tsquery(words) == "'api' & 'web' & '1' & 'or':*"
    assert search_words("x" * 200 + " " + "y " * 40)[0] == "x" * 64
    assert len(search_words("y " * 40)) == 16


def test_the_message_is_one_masked_line(store_url: str) -> None:
    secret = "s3ntinel-Hunter2-value"
    with open_store(store_url, masker=Masker([secret])) as store:
        store.append_events([site_event(1, result="failed", detail=f"line one\n{secret} two")])
        with store.engine.connect() as conn:
            [message] = conn.execute(select(events.c.message)).scalars()
        assert message == f"finished failed: line one {MASK} two"
        assert store.event_log(where=EventFilter(search=secret)) == []


def test_the_purge_deletes_old_events_a_bounded_batch_a_transaction(store: Store) -> None:
    store.append_events([site_event(n) for n in range(30)])
    commits: list[int] = []
    sa_event.listen(store.engine, "commit", lambda conn: commits.append(1))
    assert store.purge_events(older_than=AT + timedelta(minutes=12), batch=5) == 12
    assert len(commits) == 3  # 5, 5 and 2 rows: each batch its own transaction
    left = [e.host for e in store.event_log()]
    assert left == [f"web-{n}" for n in range(29, 11, -1)]
    # The keyword index lost them too, and keeps the others.
    assert store.event_log(where=EventFilter(search="web 3")) == []
    assert [e.host for e in store.event_log(where=EventFilter(search="web 13"))] == ["web-13"]
    assert store.purge_events(older_than=AT) == 0


def test_a_search_uses_the_databases_text_index(store: Store) -> None:
    store.append_events([site_event(n) for n in range(50)])
    statement = _statement(store)
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SET enable_seqscan = off"))  # too few rows to want the index
            plan = conn.execute(text(f"EXPLAIN {statement}")).all()
        else:
            plan = conn.execute(text(f"EXPLAIN QUERY PLAN {statement}")).all()
    shown = " ".join(str(row) for row in plan)
    assert "ix_events_search" in shown or "events_search VIRTUAL TABLE INDEX" in shown, shown


def _statement(store: Store) -> str:
    """The SQL of a search, its parameters inlined (captured as the store runs it)."""
    seen: list[str] = []

    def capture(conn: object, cursor: object, statement: str, params: object, *_: object) -> None:
        if "events" in statement and ("MATCH" in statement or "to_tsquery" in statement):
            seen.append(_inline(statement, params))

    sa_event.listen(store.engine, "before_cursor_execute", capture)
    try:
        store.event_log(where=EventFilter(search="deployed r4"))
    finally:
        sa_event.remove(store.engine, "before_cursor_execute", capture)
    return seen[0]


def _inline(statement: str, params: object) -> str:
    def quoted(value: object) -> str:
        return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"

    if isinstance(params, dict):
        for name, value in params.items():
            statement = statement.replace(f"%({name})s", quoted(value))
        return statement
    assert isinstance(params, tuple | list)
    for value in params:
        statement = statement.replace("?", quoted(value), 1)
    return statement


def test_events_stored_before_0008_get_a_severity_source_and_message(store_url: str) -> None:
    engine = make_engine(store_url)
    try:
        upgrade(engine, "0007")
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO events (at, kind, instance, payload, phase, site, host, result,"
                    " detail, rollout_id) VALUES (:at, :kind, :instance, '{}', :phase, :site,"
                    " :host, :result, :detail, :rollout)"
                ),
                [
                    {"at": AT, "kind": "deployment", "instance": "api@h1", "phase": "finished",
                     "site": "eu", "host": "h1", "result": "failed",
                     "detail": "health\ncheck failed", "rollout": "r1"},
                    {"at": AT, "kind": "rollout", "instance": None, "phase": "rollout-started",
                     "site": None, "host": None, "result": None, "detail": "", "rollout": "r1"},
                    {"at": AT, "kind": "instance", "instance": None, "phase": "drift",
                     "site": "eu", "host": "h2", "result": None, "detail": "moved",
                     "rollout": None},
                ],
            )  # fmt: skip
    finally:
        engine.dispose()
    with open_store(store_url) as store:
        found = {e.host: e for e in store.event_log()}
        with store.engine.connect() as conn:
            stored = {
                r.host: r
                for r in conn.execute(
                    select(events.c.host, events.c.severity, events.c.source, events.c.message)
                )
            }
        assert (stored["h1"].severity, stored["h1"].source) == ("error", "instance api@h1")
        assert stored["h1"].message == "finished failed: health check failed"
        assert (stored[None].severity, stored[None].source) == ("info", "rollout r1")
        assert stored[None].message == "rollout-started"
        assert (stored["h2"].severity, stored["h2"].source) == ("warning", "host h2")
        assert found["h1"].severity is Severity.ERROR
        searched = store.event_log(where=EventFilter(search="health fail"))
        assert [e.host for e in searched] == ["h1"]
        assert [e.host for e in store.event_log(where=EventFilter(search="moved"))] == ["h2"]
