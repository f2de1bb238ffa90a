"""Console sessions the server can end: a random id per login, stored hashed, with its login and last-seen times.

The console's cookie carries the id; the database holds its SHA-256 (like a token's, a fast hash
suffices for 256 random bits). Logging out deletes the row, so a copied cookie opens nothing
afterwards; removing a user or changing their password deletes their rows. The user's role is
read from their row on every request, so a role change applies from the next one.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plba.db import Database
from plba.users import schema
from plba.users.accounts import User, user_from_row
from plba.users.tokens import token_hash

SESSION_BYTES = 32
# A session id is 43 characters; anything much longer is not one, and is not looked up.
MAX_SESSION_LENGTH = 128
# seen_at is written at most this often per session, so a polling page does not write on every request.
SEEN_RESOLUTION = 60.0

_SELECT = ("SELECT s.hash, s.created_at AS login_at, s.seen_at, u.id, u.name, u.role, u.created_at, u.updated_at "
           "FROM plba_sessions s JOIN plba_users u ON u.id = s.user_id")


@dataclass(frozen=True)
class SessionLimits:
    """A session ends `idle` seconds after its last request and `max_age` seconds after login."""

    idle: float = 1800.0
    max_age: float = 43_200.0

    @classmethod
    def from_settings(cls, settings: Any) -> SessionLimits:
        """`platform.admin.session_idle` and `platform.admin.session_max`."""
        return cls(float(settings.get("platform.admin.session_idle", 1800.0)),
                   float(settings.get("platform.admin.session_max", 43_200.0)))


class Sessions:
    """The console sessions of one platform database."""

    def __init__(self, db: Database, limits: SessionLimits | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.limits = limits or SessionLimits()
        self.clock = clock

    def start(self, user: User) -> str:
        """A new session for `user`: its id, for the cookie (never stored). Sessions past their lifetimes go."""
        schema.ready(self.db, write=True)
        now = self.clock()
        session_id = secrets.token_urlsafe(SESSION_BYTES)
        with self.db.transaction(write=True) as tx:
            tx.execute("DELETE FROM plba_sessions WHERE created_at <= ? OR seen_at <= ?",
                       (now - self.limits.max_age, now - self.limits.idle))
            tx.execute("INSERT INTO plba_sessions (hash, user_id, created_at, seen_at) VALUES (?, ?, ?, ?)",
                       (token_hash(session_id), user.id, now, now))
        return session_id

    def resolve(self, session_id: str) -> User | None:
        """The user of a live session, with their role now; None (and the session ended) once past a lifetime."""
        if not session_id or len(session_id) > MAX_SESSION_LENGTH or not schema.ready(self.db):
            return None
        with self.db.transaction() as tx:
            row = tx.one(f"{_SELECT} WHERE s.hash = ?", (token_hash(session_id),))
        if row is None:
            return None
        now = self.clock()
        if now - row["login_at"] > self.limits.max_age or now - row["seen_at"] > self.limits.idle:
            self.end(session_id)
            return None
        if now - row["seen_at"] >= SEEN_RESOLUTION:
            with self.db.transaction(write=True) as tx:
                tx.execute("UPDATE plba_sessions SET seen_at = ? WHERE hash = ?", (now, row["hash"]))
        return user_from_row(row)

    def end(self, session_id: str) -> None:
        """End one session (logging out); nothing happens for an unknown id."""
        if session_id and schema.ready(self.db):
            with self.db.transaction(write=True) as tx:
                tx.execute("DELETE FROM plba_sessions WHERE hash = ?", (token_hash(session_id),))
