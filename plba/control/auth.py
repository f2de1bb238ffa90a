"""Who a request acts as and whether it may: one check, `require(role)`, for every endpoint.

Credentials are bearer tokens: `platform.control.token` (the service, with the admin role) or a
user's token from `plba tokens create` (the user's role at the time of the request). Until the
first user exists the control plane keeps its token-only rules: reads are open unless
`protect_reads`, everything else needs the service token, refused with 403 while none is set.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from flask import current_app, g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, ServiceUnavailable, Unauthorized

from plba.errors import DatabaseError
from plba.users import SERVICE, Accounts, InvalidToken, Principal, Role

logger = logging.getLogger("plba.control")

# Methods that only read; every other method acts.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOW_TO_ENABLE = ("no control token is configured, so the control plane refuses this request: set "
                 "platform.control.token in .secrets.toml or PLBA_PLATFORM__CONTROL__TOKEN")
NEEDS_CREDENTIAL = ("this request needs 'Authorization: Bearer <token>': a user's token from `plba tokens create`, "
                    "or platform.control.token")

View = TypeVar("View", bound=Callable[..., Any])


@dataclass(frozen=True)
class Access:
    """What an endpoint needs: `role` (None: open to anyone, like the health probes).

    `scrape`: open while `platform.control.protect_reads` is off, even once users exist (`/metrics`).
    """

    role: Role | None
    scrape: bool = False


class AuthSource(Protocol):
    """What the check reads from the control plane: the settings in force and the accounts."""

    def service_token(self) -> str | None:
        """`platform.control.token`, or None."""

    def protect_reads(self) -> bool:
        """`platform.control.protect_reads`."""

    def accounts(self) -> Accounts:
        """The users and tokens of the platform database."""


def requires(role: Role | str, *, scrape: bool = False) -> Callable[[View], View]:
    """Declare the role a view needs (checked before it runs); undeclared views need viewer to read, operator to act."""
    access = Access(Role.parse(role), scrape)

    def declare(view: View) -> View:
        view.plba_access = access  # type: ignore[attr-defined]
        return view

    return declare


def public(view: View) -> View:
    """Declare a view open to anyone once users exist (the health probes); `protect_reads` still guards it before."""
    view.plba_access = Access(None)  # type: ignore[attr-defined]
    return view


def access_of(view: Callable[..., Any] | None, method: str) -> Access:
    """What `view` declared, else viewer for reads and operator for anything else."""
    declared = getattr(view, "plba_access", None)
    if declared is not None:
        return declared
    return Access(Role.VIEWER if method in READ_METHODS else Role.OPERATOR)


def require(need: Access | Role | str) -> Principal | None:
    """The one authorization check: the request's credential must carry the role `need` asks for.

    Raises 401 without a (valid) credential, 403 with too small a role. Returns the principal,
    also left on `flask.g.principal` with `flask.g.actor` (its name, or `service`); None when
    the endpoint is open and no credential was needed. Cheap to call again in the same request.
    """
    access = need if isinstance(need, Access) else Access(Role.parse(need))
    source: AuthSource = current_app.extensions["plba"]
    protect_reads = source.protect_reads()
    if not protect_reads and (access.role is None or access.scrape):
        # Probes and scrapes are open without asking the database, so they answer even when it cannot.
        return g.get("principal")
    try:
        users_exist = source.accounts().users.any()
        role = _needed_role(access, users_exist, protect_reads)
        if role is None:
            return g.get("principal")
        principal = _identify(source, users_exist)
    except DatabaseError as exc:
        # Fail closed: without the database nobody can tell who may do what.
        logger.error("control plane: cannot check credentials: %s", exc)
        raise ServiceUnavailable("the platform database cannot be read; the runtime's log has the details") from None
    if not principal.role.includes(role):
        raise Forbidden(f"{principal.actor} has the {principal.role} role; this request needs {role}")
    return principal


def _needed_role(access: Access, users_exist: bool, protect_reads: bool) -> Role | None:
    """The role to check for an endpoint that is not open by itself, or None when no credential is needed."""
    if access.role is None:
        # A probe under protect_reads: open once users exist, guarded by the service token before.
        return None if users_exist else Role.VIEWER
    if not users_exist and not protect_reads and access.role is Role.VIEWER:
        return None
    return access.role


def _identify(source: AuthSource, users_exist: bool) -> Principal:
    """The principal behind the request's bearer token (cached on `flask.g` for the rest of the request)."""
    cached = g.get("principal")
    if cached is not None:
        return cached
    expected = source.service_token()
    if not users_exist and expected is None:
        raise Forbidden(HOW_TO_ENABLE)
    given = bearer_token(request.headers.get("Authorization"))
    if given is None:
        raise Unauthorized(NEEDS_CREDENTIAL, www_authenticate=WWWAuthenticate("bearer", {"realm": "plba"}))
    if expected is not None and hmac.compare_digest(given.encode(), expected.encode()):
        principal = SERVICE
    elif not users_exist:
        raise Forbidden("the bearer token does not match platform.control.token")
    else:
        try:
            principal = source.accounts().tokens.resolve(given)
        except InvalidToken as exc:
            raise Unauthorized(str(exc), www_authenticate=WWWAuthenticate(
                "bearer", {"realm": "plba", "error": "invalid_token"})) from None
    g.principal, g.actor = principal, principal.actor
    return principal


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, given = (authorization or "").partition(" ")
    given = given.strip()
    return given if scheme.lower() == "bearer" and given else None


class HttpCaller:
    """The request as an action's caller: the bearer token decides the actor, refusals are HTTP errors."""

    def __init__(self) -> None:
        self.remote_addr = request.remote_addr

    def authorize(self, role: str) -> str:
        """Return the actor (a user's name, or `service` for the control token) when it holds `role`; else 401/403."""
        principal = require(role)
        return principal.actor if principal is not None else self.actor_hint()

    def actor_hint(self) -> str:
        """Who the request turned out to be (also after a refusal for too small a role), else `anonymous`."""
        return str(g.get("actor") or "anonymous")
