"""Users, roles and bearer tokens in the platform database: the service the CLI, control plane and console share."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from plba.db import Database, database_location, open_database
from plba.users.accounts import LoginThrottle, User, Users
from plba.users.errors import AccountError, InvalidLogin, InvalidToken, LastAdmin, LoginThrottled
from plba.users.passwords import MIN_PASSWORD_LENGTH, Passwords, check_password
from plba.users.roles import SERVICE, Principal, Role
from plba.users.sessions import SessionLimits, Sessions
from plba.users.tokens import NewToken, TokenInfo, Tokens

__all__ = ["MIN_PASSWORD_LENGTH", "SERVICE", "AccountError", "Accounts", "InvalidLogin", "InvalidToken", "LastAdmin",
           "LoginThrottle", "LoginThrottled", "NewToken", "Passwords", "Principal", "Role", "SessionLimits", "Sessions",
           "TokenInfo", "Tokens", "User", "Users", "check_password"]


class Accounts:
    """The users, tokens and console sessions of one platform database."""

    def __init__(self, db: Database, passwords: Passwords | None = None, throttle: LoginThrottle | None = None,
                 clock: Callable[[], float] = time.time, limits: SessionLimits | None = None) -> None:
        self.db = db
        self.users = Users(db, passwords, throttle, clock)
        self.tokens = Tokens(db, clock)
        self.sessions = Sessions(db, limits, clock)

    @classmethod
    def from_settings(cls, settings: Any, db: Database | None = None) -> Accounts:
        """Accounts on `db`, or on the database `platform.database` names, with the settings' throttle and lifetimes."""
        return cls(db or open_database(database_location(settings)), throttle=LoginThrottle.from_settings(settings),
                   limits=SessionLimits.from_settings(settings))
