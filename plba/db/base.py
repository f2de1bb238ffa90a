"""What every platform database backend provides: transactions, rows as dicts, versioned migrations."""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from plba.errors import DatabaseError
from plba.masking import mask_url

MIGRATIONS_TABLE = "plba_migrations"
# The column type of an epoch time in portable DDL. Not REAL, which PostgreSQL makes single precision
# (seconds lost); SQLite gives DOUBLE PRECISION the same REAL affinity, so its files are unchanged.
TIME = "DOUBLE PRECISION"


class IntegrityError(DatabaseError):
    """A write broke a constraint (a duplicate key, most often)."""


@dataclass(frozen=True)
class Migration:
    """One schema step of a component, applied once in one transaction and recorded with its version.

    `statements` are portable SQL; `dialects` maps a backend (`"sqlite"`, `"postgresql"`) to
    statements that replace them there, for the rare DDL that differs.
    """

    version: int
    statements: tuple[str, ...] = ()
    dialects: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def for_dialect(self, dialect: str) -> tuple[str, ...]:
        """The statements to run on `dialect`."""
        return self.dialects.get(dialect, self.statements)


class Transaction(Protocol):
    """One open transaction. SQL uses `?` placeholders; a backend with another style translates them."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        """The first row of a query, or None."""

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Every row of a query."""


class Database(ABC):
    """A platform database: `transaction()` for work, `migrate()` for schema, `exists()` asks without creating."""

    dialect: ClassVar[str]

    def __init__(self, location: str) -> None:
        self.location = location
        self._current: set[str] = set()
        self._migrate_lock = threading.Lock()

    @abstractmethod
    def exists(self) -> bool:
        """Whether the database has been created (asking creates nothing)."""

    @abstractmethod
    def transaction(self, write: bool = False) -> AbstractContextManager[Transaction]:
        """A transaction committed on success, rolled back on error; `write` takes the write lock at once."""

    @abstractmethod
    def close(self) -> None:
        """Close every connection this object opened."""

    def migrate(self, component: str, migrations: Sequence[Migration]) -> list[int]:
        """Apply `component`'s migrations not yet recorded, in version order, each in the same transaction.

        Safe when several processes start at once: the write lock is taken before the recorded
        versions are read, so each migration runs exactly once. Returns the versions applied.
        """
        if component in self._current:
            return []
        with self._migrate_lock:
            if component in self._current:
                return []
            known = max((m.version for m in migrations), default=0)
            applied: list[int] = []
            with self.transaction(write=True) as tx:
                tx.execute(f"CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (component TEXT NOT NULL, "
                           f"version INTEGER NOT NULL, applied_at {TIME} NOT NULL, PRIMARY KEY (component, version))")
                done = {row["version"] for row in
                        tx.all(f"SELECT version FROM {MIGRATIONS_TABLE} WHERE component = ?", (component,))}
                if done and max(done) > known:
                    raise DatabaseError(f"platform database {mask_url(self.location)}: its {component} schema is "
                                        f"version {max(done)}, newer than this plba knows ({known}); upgrade plba")
                for migration in sorted(migrations, key=lambda m: m.version):
                    if migration.version in done:
                        continue
                    for statement in migration.for_dialect(self.dialect):
                        tx.execute(statement)
                    tx.execute(f"INSERT INTO {MIGRATIONS_TABLE} (component, version, applied_at) VALUES (?, ?, ?)",
                               (component, migration.version, time.time()))
                    applied.append(migration.version)
            self._current.add(component)
            return applied
