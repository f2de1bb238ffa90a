"""Errors of the accounts service: bad input for the CLI (exit 2), refusals for the control plane and console."""

from __future__ import annotations

from plba.errors import PlbaError, UsageError


class AccountError(UsageError):
    """A user or token command that cannot be done: unknown or duplicate user, bad role, weak password."""


class LastAdmin(AccountError):
    """Removing or demoting the only admin was refused: nobody could manage users from the console after."""


class InvalidLogin(PlbaError):
    """The user name or the password is wrong (deliberately the same error for both)."""

    def __init__(self) -> None:
        super().__init__("the user name or the password is wrong")


class LoginThrottled(PlbaError):
    """Too many failed logins for this user lately; `retry_after` is the number of seconds to wait."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(f"too many failed logins; try again in {retry_after} s")


class InvalidToken(PlbaError):
    """A bearer token that is unknown, expired or revoked; the message says which."""
