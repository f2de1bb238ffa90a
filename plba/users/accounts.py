"""Users: add, remove, change role or password, look up (for sessions), and log in with throttling."""

from __future__ import annotations

import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from plba.db import Database, IntegrityError, Transaction
from plba.users import schema
from plba.users.errors import AccountError, InvalidLogin, LastAdmin, LoginThrottled
from plba.users.passwords import Passwords, check_password
from plba.users.roles import Role

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
# Actors the audit log uses for credentials that are not users.
RESERVED_NAMES = frozenset({"service", "local", "anonymous"})


def iso(timestamp: float | None) -> str | None:
    """An epoch time as ISO 8601 in UTC to the second, or None."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def check_name(name: str) -> str:
    """`name` when it is a valid user name; AccountError otherwise."""
    if not NAME.fullmatch(name):
        raise AccountError(f"invalid user name {name!r}: use 1 to 64 letters, digits and . _ @ -, "
                           "starting with a letter or digit")
    if name.lower() in RESERVED_NAMES:
        raise AccountError(f"the user name {name!r} is reserved")
    return name


@dataclass(frozen=True)
class User:
    """A user as the console and the CLI see it (never with its password hash)."""

    id: str
    name: str
    role: Role
    created_at: float
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: name, role and times in ISO 8601."""
        return {"name": self.name, "role": str(self.role), "created_at": iso(self.created_at),
                "updated_at": iso(self.updated_at)}


@dataclass(frozen=True)
class LoginThrottle:
    """After `attempts` failed logins for a name within `window` seconds, logins for it are refused."""

    attempts: int = 5
    window: float = 900.0

    @classmethod
    def from_settings(cls, settings: Any) -> LoginThrottle:
        """`platform.admin.login_attempts` and `platform.admin.login_window`."""
        return cls(int(settings.get("platform.admin.login_attempts", 5)),
                   float(settings.get("platform.admin.login_window", 900.0)))


_COLUMNS = "id, name, role, password_hash, created_at, updated_at"


class Users:
    """The users of one platform database. Reads on a database not yet created find nothing (and create nothing)."""

    def __init__(self, db: Database, passwords: Passwords | None = None, throttle: LoginThrottle | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.passwords = passwords or Passwords()
        self.throttle = throttle or LoginThrottle()
        self.clock = clock

    def _ready(self, write: bool = False) -> bool:
        return schema.ready(self.db, write)

    # -- reading ---------------------------------------------------------------------------

    def any(self) -> bool:
        """Whether at least one user exists (from then on, reads need a credential too)."""
        if not self._ready():
            return False
        with self.db.transaction() as tx:
            return tx.one("SELECT 1 AS found FROM plba_users LIMIT 1") is not None

    def list(self) -> list[User]:
        """Every user, by name."""
        if not self._ready():
            return []
        with self.db.transaction() as tx:
            return [user_from_row(row) for row in tx.all(f"SELECT {_COLUMNS} FROM plba_users ORDER BY name")]

    def get(self, name: str) -> User | None:
        """The user called `name`, or None."""
        row = self._row(name)
        return user_from_row(row) if row else None

    def _row(self, name: str) -> dict[str, Any] | None:
        if not self._ready():
            return None
        with self.db.transaction() as tx:
            return tx.one(f"SELECT {_COLUMNS} FROM plba_users WHERE name = ?", (name,))

    def require(self, name: str) -> User:
        """The user called `name`; AccountError when there is none."""
        user = self.get(name)
        if user is None:
            raise AccountError(f"no user named {name!r}")
        return user

    # -- changing --------------------------------------------------------------------------

    def add(self, name: str, role: Role | str, password: str) -> User:
        """Add a user; AccountError for a taken or invalid name, an unknown role or a weak password."""
        check_name(name)
        role = Role.parse(role)
        check_password(password)
        encoded = self.passwords.hash(password)
        now = self.clock()
        self._ready(write=True)
        try:
            with self.db.transaction(write=True) as tx:
                tx.execute(f"INSERT INTO plba_users ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                           (secrets.token_hex(8), name, str(role), encoded, now, now))
        except IntegrityError:
            raise AccountError(f"a user named {name!r} already exists") from None
        return self.require(name)

    def remove(self, name: str, *, keep_an_admin: bool = False) -> None:
        """Remove a user with their tokens and sessions; with `keep_an_admin`, LastAdmin for the only admin."""
        user = self.require(name)
        with self.db.transaction(write=True) as tx:
            if keep_an_admin:
                _keep_an_admin(tx, name, None)
            for table in ("plba_sessions", "plba_tokens"):
                tx.execute(f"DELETE FROM {table} WHERE user_id = ?", (user.id,))
            tx.execute("DELETE FROM plba_users WHERE id = ?", (user.id,))

    def set_role(self, name: str, role: Role | str, *, keep_an_admin: bool = False) -> User:
        """Give a user another role, which their sessions and tokens carry from the next request.

        With `keep_an_admin`, taking the admin role from the only admin is refused (LastAdmin).
        """
        role = Role.parse(role)
        guard = (lambda tx: _keep_an_admin(tx, name, role)) if keep_an_admin else None
        self._update(name, "role = ?", str(role), guard)
        return self.require(name)

    def set_password(self, name: str, password: str) -> None:
        """Give a user a new password; their sessions end."""
        check_password(password)
        self.require(name)
        self._update(name, "password_hash = ?", self.passwords.hash(password), lambda tx: tx.execute(
            "DELETE FROM plba_sessions WHERE user_id = (SELECT id FROM plba_users WHERE name = ?)", (name,)))

    def _update(self, name: str, assignment: str, value: Any,
                first: Callable[[Transaction], Any] | None = None) -> None:
        """Set one column of user `name`, after `first` (a check or a related change) in the same transaction."""
        self._ready(write=True)
        with self.db.transaction(write=True) as tx:
            if first is not None:
                first(tx)
            changed = tx.execute(f"UPDATE plba_users SET {assignment}, updated_at = ? WHERE name = ?",
                                 (value, self.clock(), name))
        if not changed:
            raise AccountError(f"no user named {name!r}")

    # -- logging in ------------------------------------------------------------------------

    def authenticate(self, name: str, password: str) -> User:
        """The user when `password` is theirs; LoginThrottled or InvalidLogin otherwise.

        An unknown name costs the same argon2 verification as a wrong password and counts as a
        failure the same way, so neither the answer nor its timing tells whether the user exists.
        A successful login clears the failures and upgrades a hash made with old parameters.
        """
        wait = self.retry_after(name)
        if wait:
            raise LoginThrottled(wait)
        row = self._row(name) if NAME.fullmatch(name) else None
        matches = self.passwords.verify(row["password_hash"] if row else None, password)
        if row is None or not matches:
            if NAME.fullmatch(name):
                self._record_failure(name)
            raise InvalidLogin()
        if self.passwords.needs_rehash(row["password_hash"]):
            self._update(name, "password_hash = ?", self.passwords.hash(password))
        with self.db.transaction(write=True) as tx:
            tx.execute("DELETE FROM plba_login_failures WHERE name = ?", (name,))
        return self.require(name)

    def retry_after(self, name: str) -> int:
        """Seconds until a login for `name` is allowed again; 0 when it is allowed now."""
        if not self._ready():
            return 0
        now = self.clock()
        with self.db.transaction() as tx:
            rows = tx.all("SELECT at FROM plba_login_failures WHERE name = ? AND at > ? ORDER BY at DESC LIMIT ?",
                          (name, now - self.throttle.window, self.throttle.attempts))
        if len(rows) < self.throttle.attempts:
            return 0
        # Allowed again once the oldest of the last `attempts` failures leaves the window.
        return max(1, math.ceil(rows[-1]["at"] + self.throttle.window - now))

    def _record_failure(self, name: str) -> None:
        now = self.clock()
        self._ready(write=True)
        with self.db.transaction(write=True) as tx:
            tx.execute("DELETE FROM plba_login_failures WHERE at <= ?", (now - self.throttle.window,))
            tx.execute("INSERT INTO plba_login_failures (name, at) VALUES (?, ?)", (name, now))


def user_from_row(row: dict[str, Any]) -> User:
    """The User of a `plba_users` row (its hash left behind)."""
    return User(row["id"], row["name"], Role(row["role"]), row["created_at"], row["updated_at"])


def _keep_an_admin(tx: Transaction, name: str, role: Role | None) -> None:
    """LastAdmin when user `name` is the only admin and would be removed (`role` None) or lose the role."""
    if role is Role.ADMIN:
        return
    row = tx.one("SELECT role FROM plba_users WHERE name = ?", (name,))
    if row is None or row["role"] != str(Role.ADMIN):
        return
    others = tx.one("SELECT COUNT(*) AS n FROM plba_users WHERE role = ? AND name <> ?", (str(Role.ADMIN), name))
    if others is None or not others["n"]:
        raise LastAdmin(f"{name} is the only admin: give another user the admin role first, "
                        "so that someone can still manage users")
