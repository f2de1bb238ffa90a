"""Per-user bearer tokens: random, stored as SHA-256 hashes, shown once, with expiry, revocation and last use.

A token is 256 random bits, so a fast hash is enough: nobody can guess one to match a stolen
hash, and unlike a password it needs no slow, salted hash, which would cost every request.
The hash is deterministic, so a token is found by its hash through the unique index.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plba.db import Database, IntegrityError
from plba.users import schema
from plba.users.accounts import iso
from plba.users.errors import AccountError, InvalidToken
from plba.users.roles import Principal, Role

# The prefix lets secret scanners and people recognise a PLBA token.
TOKEN_PREFIX = "plba_"
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 256
# last_used_at is written at most this often per token, so reads do not each cost a write.
LAST_USED_RESOLUTION = 60.0


def token_hash(secret: str) -> str:
    """The SHA-256 hex digest stored for a token."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: never the token itself. `state` is `active`, `expired` or `revoked`."""

    id: str
    user: str
    role: Role
    created_at: float
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, times in ISO 8601."""
        return {"id": self.id, "user": self.user, "role": str(self.role), "state": self.state,
                "created_at": iso(self.created_at), "expires_at": iso(self.expires_at),
                "last_used_at": iso(self.last_used_at), "revoked_at": iso(self.revoked_at)}


@dataclass(frozen=True)
class NewToken:
    """A token just created: `secret` is shown once and cannot be read again."""

    info: TokenInfo
    secret: str = field(repr=False)


_SELECT = ("SELECT t.id, t.created_at, t.expires_at, t.last_used_at, t.revoked_at, u.name, u.role "
           "FROM plba_tokens t JOIN plba_users u ON u.id = t.user_id")


class Tokens:
    """The bearer tokens of one platform database."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    def _ready(self, write: bool = False) -> bool:
        return schema.ready(self.db, write)

    def create(self, user: str, expires_in: float | None = None) -> NewToken:
        """A new token for `user`, valid for `expires_in` seconds (None: until revoked)."""
        if expires_in is not None and not expires_in > 0:
            raise AccountError("a token's lifetime must be a positive number of days")
        self._ready(write=True)
        now = self.clock()
        secret = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
        token_id = secrets.token_hex(6)
        with self.db.transaction(write=True) as tx:
            owner = tx.one("SELECT id FROM plba_users WHERE name = ?", (user,))
            if owner is None:
                raise AccountError(f"no user named {user!r}")
            try:
                tx.execute("INSERT INTO plba_tokens (id, user_id, hash, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                           (token_id, owner["id"], token_hash(secret), now,
                            None if expires_in is None else now + expires_in))
            except IntegrityError:  # 48 random bits of id collided: astronomically rare, so say so
                raise AccountError("token id collision; run the command again") from None
        return NewToken(self.get(token_id), secret)

    def list(self, user: str | None = None) -> list[TokenInfo]:
        """Every token (or `user`'s), oldest first."""
        if not self._ready():
            return []
        with self.db.transaction() as tx:
            if user is None:
                rows = tx.all(f"{_SELECT} ORDER BY t.created_at, t.id")
            else:
                rows = tx.all(f"{_SELECT} WHERE u.name = ? ORDER BY t.created_at, t.id", (user,))
        return [self._info(row) for row in rows]

    def get(self, token_id: str) -> TokenInfo:
        """The token with `token_id`; AccountError when there is none."""
        row = None
        if self._ready():
            with self.db.transaction() as tx:
                row = tx.one(f"{_SELECT} WHERE t.id = ?", (token_id,))
        if row is None:
            raise AccountError(f"no token with id {token_id!r} (see `plba tokens list`)")
        return self._info(row)

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token: it is refused from the next request on. Revoking twice keeps the first time."""
        self.get(token_id)
        with self.db.transaction(write=True) as tx:
            tx.execute("UPDATE plba_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                       (self.clock(), token_id))
        return self.get(token_id)

    def resolve(self, secret: str) -> Principal:
        """The principal a bearer token stands for, with its user's role now; InvalidToken otherwise."""
        if not secret.startswith(TOKEN_PREFIX) or len(secret) > MAX_TOKEN_LENGTH or not self._ready():
            raise InvalidToken("the bearer token is not known")
        with self.db.transaction() as tx:
            row = tx.one(f"{_SELECT} WHERE t.hash = ?", (token_hash(secret),))
        if row is None:
            raise InvalidToken("the bearer token is not known")
        now = self.clock()
        info = self._info(row, now)
        if info.state != "active":
            raise InvalidToken("the bearer token has been revoked" if info.state == "revoked"
                               else "the bearer token has expired")
        if info.last_used_at is None or now - info.last_used_at >= LAST_USED_RESOLUTION:
            with self.db.transaction(write=True) as tx:
                tx.execute("UPDATE plba_tokens SET last_used_at = ? WHERE id = ?", (now, info.id))
        return Principal(info.user, info.role, "token", info.id)

    def _info(self, row: dict[str, Any], now: float | None = None) -> TokenInfo:
        now = self.clock() if now is None else now
        if row["revoked_at"] is not None:
            state = "revoked"
        elif row["expires_at"] is not None and row["expires_at"] <= now:
            state = "expired"
        else:
            state = "active"
        return TokenInfo(row["id"], row["name"], Role(row["role"]), row["created_at"], row["expires_at"],
                         row["last_used_at"], row["revoked_at"], state)
