"""What the PostgreSQL parts of plba share: connection options, a pool, versioned migrations, safe error lines.

Imported only by the PostgreSQL queue, cluster store and platform database, so an installation
without the `postgres` extra never imports psycopg.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import PoolTimeout

from plba.errors import PlbaError
from plba.masking import MASK

# What a server that is down, restarting or unreachable raises.
UNAVAILABLE = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


class SchemaError(PlbaError):
    """The database holds a newer schema than this version of plba knows, or the schema cannot be made."""

    exit_code = 2


def connect_options(socket_timeout: float, application_name: str) -> dict[str, Any]:
    """psycopg connection arguments: autocommit, and a dead server noticed within `socket_timeout` seconds."""
    return {
        "autocommit": True,
        "connect_timeout": max(1, round(socket_timeout)),
        "application_name": application_name[:63],
        # A peer that vanished without closing the socket is noticed within the socket timeout.
        "keepalives": 1,
        "keepalives_idle": max(1, round(socket_timeout)),
        "keepalives_interval": 1,
        "keepalives_count": 3,
        "tcp_user_timeout": int(socket_timeout * 1000),
    }


class SmallPool:
    """Connections made on demand and kept for reuse (at most `idle` of them), each tested before it is lent.

    For parts that run a few statements a second (the cluster store, the platform database), where
    a waiting pool would be the wrong trade: connecting happens in the caller's thread, so a server
    that is down fails the call at once with libpq's own reason, and a connection broken by a
    server restart is replaced before anyone sees it fail (the test costs one round trip).
    """

    def __init__(self, url: str, options: dict[str, Any], idle: int) -> None:
        self._url = url
        self._options = options
        self._max_idle = idle
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        self._closed = False

    @contextlib.contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        """A working connection for the block, given back afterwards unless it broke or the pool is full."""
        conn = self._borrow()
        try:
            yield conn
        finally:
            self._give_back(conn)

    def close(self) -> None:
        """Close the idle connections; connections lent out are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _borrow(self) -> psycopg.Connection[Any]:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return psycopg.connect(self._url, **self._options)
            try:
                conn.execute("SELECT 1")
                return conn
            except psycopg.Error:
                conn.close()

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        usable = not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        with self._lock:
            if usable and not self._closed and len(self._idle) < self._max_idle:
                self._idle.append(conn)
                return
        conn.close()


def migrate_component(conn: psycopg.Connection, schema: str, component: str, migrations: Sequence[str]) -> int:
    """Bring `component`'s tables in `schema` to the last of `migrations` on an autocommit connection.

    Migration N (1-based) takes the component from version N-1 to N; versions are recorded per
    component in `<schema>.schema_versions`. Concurrent starters are serialised by an advisory
    lock, so a fleet may start at once. Returns the version now in force.
    """
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"plba.migrate.{schema}"])
        conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{schema}".schema_versions ('
                     "component text PRIMARY KEY, version integer NOT NULL, "
                     "migrated_at timestamptz NOT NULL DEFAULT now())")
        row = conn.execute(f'SELECT version FROM "{schema}".schema_versions WHERE component = %s',
                           [component]).fetchone()
        current = row[0] if row else 0
        if current > len(migrations):
            raise SchemaError(f"schema {schema!r} is at {component} version {current}, newer than this plba knows "
                              f"({len(migrations)}); upgrade plba")
        for version in range(current + 1, len(migrations) + 1):
            conn.execute(migrations[version - 1].format(s=f'"{schema}"'))
            conn.execute(f'INSERT INTO "{schema}".schema_versions (component, version) VALUES (%s, %s) '
                         "ON CONFLICT (component) DO UPDATE SET version = excluded.version, migrated_at = now()",
                         [component, version])
    return len(migrations)


def without_password(text: str, url: str) -> str:
    """`text` with the password of `url` masked, should a driver message quote the URL."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return text
    return text.replace(password, MASK) if password else text


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (psycopg's run over several), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
