"""The cluster store on PostgreSQL: a fleet sharing only a database claims slots and beats through its tables.

Tables, in schema `plba` next to the queue's (versions recorded as component `cluster` in
`plba.schema_versions`):

- `cluster_claims`: one row per claimed key with its expiry; an expired row may be taken again.
- `schedule_claims`: one row per claimed (schedule, slot), kept for the claim's ttl.
- `schedule_last_fired`: one row per schedule with the latest slot fired.
- `cluster_instances`: one row per instance with its last heartbeat record, `last_seen` and expiry.
- `cluster_stop_requests`: one row per instance asked to stop, with its expiry.

Every expiry is on the database's clock, so the fleet's clocks need not agree, as with Redis.
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from plba.cluster import ClusterStore
from plba.errors import PlbaError
from plba.masking import mask_url
from plba.postgres import UNAVAILABLE, SmallPool, connect_options, first_line, migrate_component, without_password

SCHEMA = "plba"
COMPONENT = "cluster"
# Migration N (1-based) brings the tables from version N-1 to N. Append, never edit.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE {s}.cluster_claims (
        key text PRIMARY KEY,
        owner text NOT NULL,
        expires_at timestamptz NOT NULL
    );
    CREATE INDEX cluster_claims_expiry ON {s}.cluster_claims (expires_at);
    CREATE TABLE {s}.schedule_claims (
        schedule text NOT NULL,
        slot timestamptz NOT NULL,
        owner text NOT NULL,
        expires_at timestamptz NOT NULL,
        PRIMARY KEY (schedule, slot)
    );
    CREATE INDEX schedule_claims_expiry ON {s}.schedule_claims (expires_at);
    CREATE TABLE {s}.schedule_last_fired (
        schedule text PRIMARY KEY,
        slot timestamptz NOT NULL
    );
    CREATE TABLE {s}.cluster_instances (
        id text PRIMARY KEY,
        record jsonb NOT NULL,
        last_seen timestamptz NOT NULL,
        expires_at timestamptz NOT NULL
    );
    CREATE TABLE {s}.cluster_stop_requests (
        id text PRIMARY KEY,
        request jsonb NOT NULL,
        expires_at timestamptz NOT NULL
    );
    """,
)

_S = f'"{SCHEMA}"'
_TTL = "now() + make_interval(secs => %(ttl)s)"
# An expired key is taken over in the same statement; a live one is refused.
CLAIM = (f"INSERT INTO {_S}.cluster_claims AS c (key, owner, expires_at) VALUES (%(key)s, %(owner)s, {_TTL}) "
         "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at "
         "WHERE c.expires_at <= now() RETURNING 1")
RENEW = (f"UPDATE {_S}.cluster_claims SET expires_at = {_TTL} "
         "WHERE key = %(key)s AND owner = %(owner)s AND expires_at > now() RETURNING 1")
RELEASE = f"DELETE FROM {_S}.cluster_claims WHERE key = %(key)s AND owner = %(owner)s"
# As the Redis script: refused when the slot is no later than the last one fired, or already claimed;
# otherwise the claim is written and the slot becomes the last fired, both or neither. The upsert on
# the schedule's row is the arbiter: it locks the row, so claimants of one schedule take turns and
# each sees the slot its predecessor committed. A claim row already there (the last-fired row was
# removed by hand) violates the key, which undoes the upsert too.
CLAIM_SLOT = (
    f"WITH fired AS (INSERT INTO {_S}.schedule_last_fired AS l (schedule, slot) VALUES (%(schedule)s, %(slot)s) "
    "ON CONFLICT (schedule) DO UPDATE SET slot = excluded.slot WHERE l.slot < excluded.slot "
    "RETURNING schedule, slot) "
    f"INSERT INTO {_S}.schedule_claims (schedule, slot, owner, expires_at) "
    f"SELECT schedule, slot, %(owner)s, {_TTL} FROM fired RETURNING 1")
EXPIRED_SLOT_CLAIMS = f"DELETE FROM {_S}.schedule_claims WHERE schedule = %(schedule)s AND expires_at <= now()"
EXPIRED_CLAIMS = f"DELETE FROM {_S}.cluster_claims WHERE expires_at <= now()"
LAST_FIRED = f"SELECT slot FROM {_S}.schedule_last_fired WHERE schedule = %(schedule)s"
BEAT = (f"INSERT INTO {_S}.cluster_instances (id, record, last_seen, expires_at) "
        f"VALUES (%(id)s, %(record)s, now(), {_TTL}) ON CONFLICT (id) DO UPDATE SET record = excluded.record, "
        "last_seen = excluded.last_seen, expires_at = excluded.expires_at")
EXPIRED_INSTANCES = f"DELETE FROM {_S}.cluster_instances WHERE expires_at <= now()"
INSTANCES = f"SELECT record FROM {_S}.cluster_instances WHERE expires_at > now() ORDER BY id"
LEAVE = (f"WITH gone AS (DELETE FROM {_S}.cluster_instances WHERE id = %(id)s) "
         f"DELETE FROM {_S}.cluster_stop_requests WHERE id = %(id)s")
# Written only next to a live heartbeat, in the same statement that checks it.
REQUEST_STOP = (f"INSERT INTO {_S}.cluster_stop_requests (id, request, expires_at) "
                f"SELECT id, %(request)s, {_TTL} FROM {_S}.cluster_instances WHERE id = %(id)s AND expires_at > now() "
                "ON CONFLICT (id) DO UPDATE SET request = excluded.request, expires_at = excluded.expires_at "
                "RETURNING 1")
# Deleted as it is read: of two takers, one gets the row.
TAKE_STOP_REQUEST = (f"DELETE FROM {_S}.cluster_stop_requests WHERE id = %(id)s "
                     "RETURNING request, expires_at > now() AS live")


class ClusterUnavailableError(PlbaError):
    """The cluster store's PostgreSQL cannot be reached, or refused a statement."""


class PostgresClusterStore(ClusterStore):
    """Claims, firings, heartbeats and stop requests as rows; each operation is one atomic statement.

    The tables are created (or migrated) on first use, so a process starts while PostgreSQL is
    down: its scheduler reports the store unavailable and its heartbeat retries until it answers.
    """

    def __init__(self, url: str, owner: str, socket_timeout: float = 5.0, idle_connections: int = 2) -> None:
        super().__init__(owner)
        self.url = mask_url(url)
        self._dsn = url
        self._pool = SmallPool(url, connect_options(socket_timeout, "plba cluster"), idle_connections)
        self._migrated = False
        self._migrate_lock = threading.Lock()

    def claim(self, key: str, ttl: float) -> bool:
        """Take `key` for `ttl` seconds unless another instance holds it; expired keys are cleared meanwhile."""
        with self._connection("claiming") as conn, conn.transaction():
            conn.execute(EXPIRED_CLAIMS)
            return conn.execute(CLAIM, {"key": key, "owner": self.owner, "ttl": float(ttl)}).fetchone() is not None

    def renew(self, key: str, ttl: float) -> bool:
        """Extend the claim if this instance still holds it and it has not expired."""
        with self._connection("renewing a claim") as conn:
            return conn.execute(RENEW, {"key": key, "owner": self.owner, "ttl": float(ttl)}).fetchone() is not None

    def release(self, key: str) -> None:
        """Delete the claim if this instance holds it."""
        with self._connection("releasing a claim") as conn:
            conn.execute(RELEASE, {"key": key, "owner": self.owner})

    def claim_slot(self, schedule: str, slot: datetime, ttl: float) -> bool:
        """Take the slot unless another instance did, or a later slot was fired already."""
        params = {"schedule": schedule, "slot": slot, "owner": self.owner, "ttl": float(ttl)}
        try:
            with self._connection("claiming a slot") as conn, conn.transaction():
                conn.execute(EXPIRED_SLOT_CLAIMS, params)
                return conn.execute(CLAIM_SLOT, params).fetchone() is not None
        except psycopg.errors.UniqueViolation:
            return False

    def last_fired(self, schedule: str) -> datetime | None:
        """The latest slot claimed by any instance."""
        with self._connection("reading the last firing") as conn:
            row = conn.execute(LAST_FIRED, {"schedule": schedule}).fetchone()
        return None if row is None else row[0].astimezone(UTC)

    def beat(self, record: dict[str, Any], ttl: float) -> None:
        """Write the record with its expiry (one statement)."""
        params = {"id": record["id"], "record": Jsonb(record, dumps=_dumps), "ttl": float(ttl)}
        with self._connection("beating") as conn:
            conn.execute(BEAT, params)

    def instances(self) -> list[dict[str, Any]]:
        """Every record whose heartbeat has not expired; expired rows are deleted on the way."""
        with self._connection("listing instances") as conn, conn.transaction():
            conn.execute(EXPIRED_INSTANCES)
            return [row[0] for row in conn.execute(INSTANCES).fetchall()]

    def leave(self, instance_id: str) -> None:
        """Delete the heartbeat and any stop request."""
        with self._connection("leaving") as conn:
            conn.execute(LEAVE, {"id": instance_id})

    def request_stop(self, instance_id: str, request: dict[str, Any], ttl: float) -> bool:
        """Leave the request next to a live heartbeat."""
        params = {"id": instance_id, "request": Jsonb(request, dumps=_dumps), "ttl": float(ttl)}
        with self._connection("requesting a stop") as conn:
            return conn.execute(REQUEST_STOP, params).fetchone() is not None

    def take_stop_request(self, instance_id: str) -> dict[str, Any] | None:
        """The request, deleted as it is read, unless it expired."""
        with self._connection("taking a stop request") as conn:
            row = conn.execute(TAKE_STOP_REQUEST, {"id": instance_id}).fetchone()
        return row[0] if row is not None and row[1] else None

    def close(self) -> None:
        """Close the connection pool."""
        self._pool.close()

    @contextlib.contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg.Connection]:
        """A pooled connection to migrated tables; a refused or lost one is a ClusterUnavailableError."""
        try:
            with self._pool.connection() as conn:
                self._migrate(conn)
                yield conn
        except UNAVAILABLE as exc:
            raise ClusterUnavailableError(f"platform.cluster.url: PostgreSQL at {self.url} is unavailable while "
                                          f"{doing}: {without_password(first_line(exc), self._dsn)}") from exc

    def _migrate(self, conn: psycopg.Connection) -> None:
        if self._migrated:
            return
        with self._migrate_lock:
            if not self._migrated:
                migrate_component(conn, SCHEMA, COMPONENT, MIGRATIONS)
                self._migrated = True


def _dumps(value: Any) -> str:
    return json.dumps(value, default=str)
