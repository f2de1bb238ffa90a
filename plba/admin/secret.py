"""The key signing the console's cookies: `platform.admin.secret_key`, else one kept in the platform database."""

from __future__ import annotations

import secrets
from typing import Any

from plba.db import Database, Migration

COMPONENT = "admin"
MIGRATIONS = (Migration(1, ("CREATE TABLE plba_admin_secret (id INTEGER PRIMARY KEY, value TEXT NOT NULL)",)),)


def secret_key(settings: Any, database: Database) -> str:
    """The configured key, else the database's (created on first use, so every instance sharing it agrees)."""
    configured = settings.get("platform.admin.secret_key")
    if configured:
        return str(configured)
    database.migrate(COMPONENT, MIGRATIONS)
    with database.transaction(write=True) as tx:
        # Two instances starting at once: the first insert wins and both read it back.
        tx.execute("INSERT INTO plba_admin_secret (id, value) VALUES (1, ?) ON CONFLICT (id) DO NOTHING",
                   (secrets.token_urlsafe(48),))
        row = tx.one("SELECT value FROM plba_admin_secret WHERE id = 1")
    return str(row["value"]) if row else ""
