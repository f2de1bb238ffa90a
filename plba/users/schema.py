"""The `users` component's tables in the platform database, as versioned migrations."""

from __future__ import annotations

from plba.db import TIME, Database, Migration

COMPONENT = "users"

MIGRATIONS = (
    Migration(1, (
        # id is random and new for every added user, so a removed and re-added name starts afresh.
        "CREATE TABLE plba_users (id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL, "
        f"password_hash TEXT NOT NULL, created_at {TIME} NOT NULL, updated_at {TIME} NOT NULL)",
        # hash: SHA-256 hex of the token; the token itself is never stored.
        "CREATE TABLE plba_tokens (id TEXT PRIMARY KEY, "
        "user_id TEXT NOT NULL REFERENCES plba_users (id) ON DELETE CASCADE, hash TEXT NOT NULL UNIQUE, "
        f"created_at {TIME} NOT NULL, expires_at {TIME}, last_used_at {TIME}, revoked_at {TIME})",
        "CREATE INDEX plba_tokens_user ON plba_tokens (user_id)",
        # One row per failed login; rows older than the throttle window are pruned.
        f"CREATE TABLE plba_login_failures (name TEXT NOT NULL, at {TIME} NOT NULL)",
        "CREATE INDEX plba_login_failures_name ON plba_login_failures (name, at)",
        "CREATE INDEX plba_login_failures_at ON plba_login_failures (at)",
    )),
    Migration(2, (
        # One row per console login; hash: SHA-256 hex of the random session id the cookie carries.
        "CREATE TABLE plba_sessions (hash TEXT PRIMARY KEY, "
        "user_id TEXT NOT NULL REFERENCES plba_users (id) ON DELETE CASCADE, "
        f"created_at {TIME} NOT NULL, seen_at {TIME} NOT NULL)",
        "CREATE INDEX plba_sessions_user ON plba_sessions (user_id)",
    )),
)


def ready(db: Database, write: bool = False) -> bool:
    """Migrate `db` before use; False (creating nothing) when it does not exist yet and nothing is to be written."""
    if not write and not db.exists():
        return False
    db.migrate(COMPONENT, MIGRATIONS)
    return True
