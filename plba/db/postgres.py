"""The PostgreSQL platform database: users, tokens and the audit log shared by every machine of a fleet.

The components write their SQL once with `?` placeholders; it is translated to psycopg's `%s`
here. Write transactions take one advisory lock for the whole platform database, so writers
take turns across processes as they do on SQLite, and migrations run once however many
processes start together.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg
from psycopg.rows import dict_row

from plba.db.base import Database, IntegrityError
from plba.errors import DatabaseError
from plba.masking import mask_url
from plba.postgres import UNAVAILABLE, SmallPool, connect_options, first_line, without_password

# Seconds to connect, and before a silent server counts as down.
SOCKET_TIMEOUT = 10.0
POOL_SIZE = 4
# Taken by every write transaction: the platform database's write lock.
WRITE_LOCK = "SELECT pg_advisory_xact_lock(hashtext('plba.platform_database'))"
# Single-quoted literals (with '' inside), or one `?` or `%` outside them.
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|%")


@functools.lru_cache(maxsize=256)
def to_pyformat(sql: str) -> str:
    """`sql` with `?` placeholders as psycopg's `%s`, and literal `%` doubled so psycopg leaves it alone."""
    def replace(match: re.Match[str]) -> str:
        token = match.group()
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        return token.replace("%", "%%")

    return _TOKEN.sub(replace, sql)


class PostgresDatabase(Database):
    """A PostgreSQL database named by a `postgresql://` URL; tables go to the connection's search path.

    Connections are made on first use and kept for reuse, so building this object needs no server.
    """

    dialect = "postgresql"

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.url = mask_url(location)
        self._pool = SmallPool(location, {**connect_options(SOCKET_TIMEOUT, "plba platform database"),
                                          "row_factory": dict_row}, POOL_SIZE)
        self._exists = False

    def exists(self) -> bool:
        """Whether a component has made its tables here (the migrations table is there)."""
        if not self._exists:
            with self.transaction() as tx:
                row = tx.one("SELECT to_regclass('plba_migrations') IS NOT NULL AS found")
            self._exists = bool(row and row["found"])
        return self._exists

    @contextlib.contextmanager
    def transaction(self, write: bool = False) -> Iterator[_PostgresTransaction]:
        """A transaction on a pooled connection; `write` takes the platform database's write lock first."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                tx = _PostgresTransaction(conn, self)
                if write:
                    tx.execute(WRITE_LOCK)
                yield tx
        except psycopg.Error as exc:  # connecting, committing (statements' errors are converted as they run)
            raise self.error(exc) from None

    def close(self) -> None:
        """Close the pool and its connections."""
        self._pool.close()

    def error(self, exc: Exception) -> DatabaseError:
        """A PLBA error naming the (masked) URL for a driver error."""
        kind = IntegrityError if isinstance(exc, psycopg.IntegrityError) else DatabaseError
        doing = "unavailable: " if isinstance(exc, UNAVAILABLE) else ""
        return kind(f"platform database {self.url}: {doing}{without_password(first_line(exc), self.location)}")


class _PostgresTransaction:
    """A transaction on one connection; rows come back as plain dicts."""

    def __init__(self, connection: psycopg.Connection[Any], database: PostgresDatabase) -> None:
        self._connection = connection
        self._database = database

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self._run(sql, params).rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The first row of a query, or None."""
        return self._run(sql, params).fetchone()

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of a query."""
        return self._run(sql, params).fetchall()

    def _run(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor[Any]:
        try:
            return self._connection.execute(to_pyformat(sql), tuple(_storable(value) for value in params))
        except psycopg.Error as exc:
            raise self._database.error(exc) from None


def _storable(value: Any) -> Any:
    """`value`, with each NUL of a string as U+FFFD: PostgreSQL text cannot hold NUL, which SQLite stores.

    A NUL comes from what a client sent (a user name in a path, an audited target): looked up, it
    then finds nothing, and kept, it stays readable, where it would fail the whole statement.
    """
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value
