"""Wake-ups for new events across processes on PostgreSQL: LISTEN/NOTIFY as a doorbell.

Every transaction that stores events also sends `NOTIFY shipyard_events` (write_events), which
PostgreSQL delivers at commit, once per transaction. A server replica listens on a connection
of its own and reads the events table when the bell rings; the table stays the only queue, so
a notification lost (the listener reconnecting, PostgreSQL restarted) costs at most the hub's
poll interval, never an event. Through PgBouncer in transaction mode LISTEN is not possible:
point `url` straight at PostgreSQL, or rely on the poll.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from sqlalchemy import Connection, text
from sqlalchemy.engine import URL

log = logging.getLogger("shipyard.store.notices")

CHANNEL = "shipyard_events"
WAIT_SECONDS = 1.0  # how long one wait for a notification lasts (then `stop` is looked at)
RETRY_SECONDS = (1.0, 2.0, 5.0, 10.0)  # waits before reconnecting, after each failure in a row


def ring(conn: Connection) -> None:
    """Tell every listener, at this transaction's commit, that events were stored."""
    conn.execute(text(f"NOTIFY {CHANNEL}"))


class EventNotices:
    """A listener of CHANNEL on its own connection (not the pool's), for one thread."""

    def __init__(self, url: URL) -> None:
        # psycopg's own connect takes the plain URL (no "+psycopg" driver name).
        self._dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)

    def run(self, heard: Callable[[], None], stop: threading.Event) -> None:
        """Until `stop` is set: call `heard` after each notification, and once after each
        (re)connection (what was stored while nobody listened); reconnect after a failure."""
        import psycopg

        failures = 0
        while not stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    failures = 0
                    heard()
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=WAIT_SECONDS):
                            heard()
            except psycopg.Error as failure:
                wait = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("listening for events failed (again in %gs): %s", wait, failure)
                stop.wait(wait)
