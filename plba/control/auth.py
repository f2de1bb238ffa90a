"""Bearer-token checks: actions always need the token, reads only with `platform.control.protect_reads`."""

from __future__ import annotations

import hmac
from typing import Any

from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Forbidden, Unauthorized

# Methods that only read; every other method acts and always needs the token.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
HOW_TO_ENABLE = ("no control token is configured, so the control plane refuses this request: set "
                 "platform.control.token in .secrets.toml or PLBA_PLATFORM__CONTROL__TOKEN")


def configured_token(settings: Any) -> str | None:
    """The token in force, or None when none (or an empty one) is set."""
    token = settings.get("platform.control.token")
    return str(token) if token not in (None, "") else None


def needs_token(method: str, protect_reads: bool) -> bool:
    """Whether a request with `method` must carry the token."""
    return protect_reads or method not in READ_METHODS


def authorize(authorization: str | None, expected: str | None) -> None:
    """Raise 401 without a bearer token, 403 with a wrong one or when no token (`expected`) is configured."""
    if expected is None:
        raise Forbidden(HOW_TO_ENABLE)
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        raise Unauthorized("this request needs 'Authorization: Bearer <platform.control.token>'",
                           www_authenticate=WWWAuthenticate("bearer", {"realm": "plba"}))
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise Forbidden("the bearer token does not match platform.control.token")
