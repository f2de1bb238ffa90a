"""The audit log in the platform database: the `audit` component's table, its migrations, reads and writes."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from plba.audit import AuditEvent
from plba.db import TIME, Database, Migration

COMPONENT = "audit"
# SQLite and PostgreSQL spell an auto-numbered key differently; the number keeps events in write order.
_TABLE = (f"CREATE TABLE plba_audit ({{id}}, at {TIME} NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, "
          "target TEXT, params TEXT NOT NULL, outcome TEXT NOT NULL, remote_addr TEXT, detail TEXT)")
_INDEX = "CREATE INDEX plba_audit_at ON plba_audit (at)"
MIGRATIONS = (
    Migration(1, dialects={
        "sqlite": (_TABLE.format(id="id INTEGER PRIMARY KEY AUTOINCREMENT"), _INDEX),
        "postgresql": (_TABLE.format(id="id BIGSERIAL PRIMARY KEY"), _INDEX),
    }),
)
# Old events are pruned once in this many writes, so the table stays near `max_events`.
PRUNE_EVERY = 100


class DatabaseAuditStore:
    """Events as rows of `plba_audit`, at most `max_events` of them (0: no limit), the oldest pruned first.

    `database` is asked for the database on every use, so a reload that moves it is followed.
    """

    def __init__(self, database: Callable[[], Database], max_events: int = 100_000) -> None:
        self._database = database
        self.max_events = max_events
        self._writes = 0
        self._lock = threading.Lock()

    def append(self, event: AuditEvent) -> None:
        """Insert `event` (creating the table on first use) and now and then prune the oldest beyond the cap."""
        database = self._database()
        database.migrate(COMPONENT, MIGRATIONS)
        with self._lock:
            self._writes += 1
            prune = self.max_events > 0 and self._writes % PRUNE_EVERY == 0
        with database.transaction(write=True) as tx:
            tx.execute("INSERT INTO plba_audit (at, actor, action, target, params, outcome, remote_addr, detail) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (event.at, event.actor, event.action, event.target, json.dumps(event.params, default=str),
                        event.outcome, event.remote_addr, event.detail))
            if prune:
                tx.execute("DELETE FROM plba_audit WHERE id <= (SELECT MAX(id) FROM plba_audit) - ?",
                           (self.max_events,))

    def recent(self, limit: int) -> list[AuditEvent]:
        """The latest `limit` events, newest first; none while the database does not exist yet."""
        database = self._database()
        if not database.exists():
            return []
        database.migrate(COMPONENT, MIGRATIONS)
        with database.transaction() as tx:
            rows = tx.all("SELECT at, actor, action, target, params, outcome, remote_addr, detail FROM plba_audit "
                          "ORDER BY id DESC LIMIT ?", (limit,))
        return [AuditEvent(row["at"], row["actor"], row["action"], row["target"], json.loads(row["params"]),
                           row["outcome"], row["remote_addr"], row["detail"]) for row in rows]
