"""The SQLite platform database: one file, WAL so readers never wait on a writer, a busy timeout across processes."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from plba.db.base import Database, IntegrityError
from plba.errors import DatabaseError

# How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT = 10.0


class SqliteDatabase(Database):
    """A SQLite file, created (with its directory, readable by its owner only) on the first connection.

    Each thread gets its own connection, reused across transactions; `close()` closes them all.
    """

    dialect = "sqlite"

    def __init__(self, location: str, path: Path, busy_timeout: float = BUSY_TIMEOUT) -> None:
        super().__init__(location)
        self.path = path
        self.busy_timeout = busy_timeout
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Set by close(): wakes a connection waiting to switch the file to WAL, at once.
        self._closing = threading.Event()

    def exists(self) -> bool:
        """Whether the file is there."""
        return self.path.is_file()

    @contextlib.contextmanager
    def transaction(self, write: bool = False) -> Iterator[_SqliteTransaction]:
        """BEGIN IMMEDIATE for writes (the lock is taken up front, so no upgrade deadlock), BEGIN for reads."""
        connection = self._connection()
        self._run(connection, "BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield _SqliteTransaction(connection, self)
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                connection.rollback()
            raise
        try:
            connection.commit()
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                connection.rollback()
            raise self.error(exc) from None

    def close(self) -> None:
        """Close every thread's connection."""
        with self._lock:
            connections, self._connections = self._connections, []
            self._local = threading.local()
            # A fresh event, so connections opened after this close wait as before.
            closing, self._closing = self._closing, threading.Event()
        closing.set()
        for connection in connections:
            connection.close()

    def error(self, exc: sqlite3.Error) -> DatabaseError:
        """A PLBA error naming the file for a sqlite3 error."""
        kind = IntegrityError if isinstance(exc, sqlite3.IntegrityError) else DatabaseError
        return kind(f"platform database {self.path}: {exc}")

    def _run(self, connection: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise self.error(exc) from None

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._connect()
            with self._lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def _connect(self) -> sqlite3.Connection:
        try:
            if not self.path.exists():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # Password and token hashes live here: only the owner may read the file (WAL files follow).
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            # isolation_level=None: transactions are begun explicitly, never implicitly by the driver.
            connection = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                         check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise DatabaseError(f"platform database {self.path}: cannot open: {exc}") from None
        connection.row_factory = sqlite3.Row
        try:
            self._enable_wal(connection)
            connection.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            connection.close()
            raise self.error(exc) from None
        except DatabaseError:
            connection.close()
            raise
        return connection

    def _enable_wal(self, connection: sqlite3.Connection) -> None:
        # Switching a new file to WAL needs an exclusive lock for a moment, and SQLite answers
        # SQLITE_BUSY at once instead of calling the busy handler: retry within the busy timeout,
        # unless the database is closed meanwhile.
        closing = self._closing
        deadline = time.monotonic() + self.busy_timeout
        while True:
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
            if closing.wait(0.01):
                raise DatabaseError(f"platform database {self.path}: closed while waiting to open it")


class _SqliteTransaction:
    """A transaction on one connection; rows come back as plain dicts."""

    def __init__(self, connection: sqlite3.Connection, database: SqliteDatabase) -> None:
        self._connection = connection
        self._database = database

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        return self._database._run(self._connection, sql, params).rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The first row of a query, or None."""
        row = self._database._run(self._connection, sql, params).fetchone()
        return dict(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of a query."""
        return [dict(row) for row in self._database._run(self._connection, sql, params).fetchall()]
