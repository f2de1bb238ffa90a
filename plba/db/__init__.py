"""The platform database (`platform.database`): users, tokens and the audit log, each with its own migrations.

A component owns its tables and a list of `Migration`s, and calls `database.migrate(component,
migrations)` before first use; versions are recorded per component, so modules add tables
without touching each other's schema.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from plba.db.base import TIME, Database, IntegrityError, Migration, Transaction
from plba.errors import ConfigError

__all__ = ["DEFAULT_LOCATION", "TIME", "Database", "IntegrityError", "Migration", "Transaction", "database_location",
           "open_database"]

DEFAULT_LOCATION = "var/plba.sqlite"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def database_location(settings: Any) -> str:
    """`platform.database` from the settings: a file path (relative to the working directory) or a URL."""
    return str(settings.get("platform.database") or DEFAULT_LOCATION)


def open_database(location: str, root: str | Path | None = None) -> Database:
    """The database at `location`: a SQLite file (created on first write; relative to `root` or cwd) or a URL."""
    if _URL.match(location):
        scheme = location.split(":", 1)[0].lower()
        if scheme in ("postgresql", "postgres"):
            return _postgres(location)
        raise ConfigError(f"platform.database: unsupported URL scheme {scheme!r}; give a file path for SQLite "
                          "or a postgresql:// URL")
    from plba.db.sqlite import SqliteDatabase

    path = Path(location).expanduser()
    return SqliteDatabase(location, path if path.is_absolute() else Path(root or Path.cwd()) / path)


def _postgres(url: str) -> Database:
    try:
        from plba.db.postgres import PostgresDatabase
    except ModuleNotFoundError as exc:
        if exc.name not in ("psycopg", "psycopg_pool"):
            raise
        raise ConfigError("platform.database: a postgresql:// URL needs the postgres extra "
                          "(pip install 'plba[postgres]')") from None
    return PostgresDatabase(url)
