"""Users and their tokens as actions (role admin): add a user, change a role, remove one; create and revoke tokens.

The rules are the accounts service's, so the console, the API and `plba users ...` refuse the
same input with the same line. Unlike the command line on the server, these never remove or
demote the only admin: the console and the API would be left without anyone to manage users.
Passwords arrive in the body only and are masked in the audit log; a new token is in the answer
and nowhere else.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from plba.actions.errors import InvalidParams, NotNow, UnknownTarget
from plba.actions.params import Param, number, secret, text
from plba.actions.registry import PLATFORM_ACTIONS, Invocation
from plba.users import AccountError, Accounts, LastAdmin, Users

# Longer input is refused by the parameter check, so an error line never repeats a huge value.
MAX_NAME_LENGTH = 200
MAX_ROLE_LENGTH = 20
MAX_EXPIRY_DAYS = 3650
DAY = 86_400.0

ROLE = Param("role", text(MAX_ROLE_LENGTH, what="a role"), "viewer, operator or admin", required=True)
ADD_PARAMS = (
    Param("name", text(MAX_NAME_LENGTH, what="a user name"),
          "1 to 64 letters, digits and . _ @ -, starting with a letter or digit", required=True),
    ROLE,
    Param("password", secret(), "the new user's password (at least 12 characters, one line)", required=True),
)
TOKEN_PARAMS = (Param("expires_days", number(1, MAX_EXPIRY_DAYS, nullable=True),
                      "days until the token expires; null: never"),)


def accounts_of(runtime: Any) -> Accounts:
    """The users and tokens of the runtime's platform database."""
    return Accounts.from_settings(runtime.settings, runtime.database)


@PLATFORM_ACTIONS.action("users.add", role="admin", route="users", params=ADD_PARAMS)
def add(call: Invocation) -> dict[str, Any]:
    """Add a user with a role and a password."""
    with _refusals():
        return accounts_of(call.runtime).users.add(call.params["name"], call.params["role"],
                                                   call.params["password"]).to_dict()


@PLATFORM_ACTIONS.action("users.set_role", role="admin", route="users/<name>/role", params=(ROLE,), target="user")
def set_role(call: Invocation) -> dict[str, Any]:
    """Give the user another role (never taking admin from the only admin); it applies from their next request."""
    users = accounts_of(call.runtime).users
    with _refusals():
        _user(users, call.target)
        return users.set_role(str(call.target), call.params["role"], keep_an_admin=True).to_dict()


@PLATFORM_ACTIONS.action("users.remove", role="admin", route="users/<name>/remove", target="user")
def remove(call: Invocation) -> dict[str, Any]:
    """Remove the user (never the only admin), ending their sessions and tokens."""
    users = accounts_of(call.runtime).users
    with _refusals():
        _user(users, call.target)
        users.remove(str(call.target), keep_an_admin=True)
    return {"removed": call.target}


@PLATFORM_ACTIONS.action("tokens.create", role="admin", route="users/<name>/tokens", params=TOKEN_PARAMS,
                         target="user")
def create_token(call: Invocation) -> dict[str, Any]:
    """Create a bearer token for the user; the answer holds it, the only time it is shown."""
    accounts = accounts_of(call.runtime)
    days = call.params["expires_days"]
    with _refusals():
        _user(accounts.users, call.target)
        new = accounts.tokens.create(str(call.target), None if days is None else days * DAY)
    return {**new.info.to_dict(), "token": new.secret}


@PLATFORM_ACTIONS.action("tokens.revoke", role="admin", route="tokens/<name>/revoke", target="token")
def revoke_token(call: Invocation) -> dict[str, Any]:
    """Revoke the token: it is refused from the next request on."""
    tokens = accounts_of(call.runtime).tokens
    try:
        tokens.get(str(call.target))
    except AccountError:
        raise UnknownTarget(f"no token with id {call.target!r}") from None
    return tokens.revoke(str(call.target)).to_dict()


def _user(users: Users, name: str | None) -> None:
    """UnknownTarget (404) unless user `name` exists."""
    if users.get(str(name)) is None:
        raise UnknownTarget(f"no user named {name!r}")


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """The accounts service's refusals as the action's: the only admin kept is 409, the rest bad input (400)."""
    try:
        yield
    except LastAdmin as exc:
        raise NotNow(str(exc)) from None
    except AccountError as exc:
        raise InvalidParams(str(exc)) from None
