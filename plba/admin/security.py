"""The console's session, CSRF and response headers.

Sessions are Flask's signed cookies (itsdangerous) holding a random session id; the platform
database keeps its hash with the login and last request times (`plba.users.Sessions`), so the
server ends a session: at logout, past the idle or absolute lifetime, and when the user is
removed or their password changes. A copy of the cookie opens nothing after that. The session
is loaded before the app's authorization hook, so `plba.control.auth.require` sees the user as
`g.principal` like a bearer token's, with the role their row holds now.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, g, request, session
from flask_wtf.csrf import CSRFProtect

from plba.admin.secret import secret_key
from plba.users import Principal, Sessions, User

PREFIX = "/admin"
COOKIE = "plba_admin"
csrf = CSRFProtect()


def install_security(app: Flask, runtime: Any) -> None:
    """Signed cookie sessions on /admin, CSRF on request, and the console's headers."""
    settings = runtime.settings
    app.secret_key = secret_key(settings, runtime.database)
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE, SESSION_COOKIE_PATH=PREFIX, SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=bool(settings.get("platform.admin.secure_cookies")),
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=float(settings.get("platform.admin.session_max"))),
        # Checked by the console's own hook, on its routes only: bearer-token API calls carry no CSRF token.
        WTF_CSRF_CHECK_DEFAULT=False, WTF_CSRF_TIME_LIMIT=None, WTF_CSRF_SSL_STRICT=True,
    )
    csrf.init_app(app)
    # Before the app's authorization hook (Flask runs app-level hooks in list order).
    app.before_request_funcs.setdefault(None, []).insert(0, load_session)
    app.extensions.setdefault("plba.identify", []).append(load_session)
    app.after_request(secure_headers)


def console_request() -> bool:
    """Whether the request is for the console."""
    return request.path == PREFIX or request.path.startswith(PREFIX + "/")


def load_session() -> None:
    """Put the session's user on `g.user`, `g.principal` and `g.actor`; forget a session the server has ended."""
    if not console_request() or "sid" not in session:
        return
    user = _sessions().resolve(str(session["sid"]))
    if user is None:
        session.clear()
        return
    g.user = user
    g.principal = Principal(user.name, user.role, "session")
    g.actor = user.name


def start_session(user: User) -> None:
    """A fresh session for `user`: everything before is dropped, so no earlier cookie carries over."""
    session.clear()
    session.permanent = True
    session["sid"] = _sessions().start(user)


def end_session() -> None:
    """End the session on the server, and forget it in the browser (an expired cookie)."""
    if "sid" in session:
        _sessions().end(str(session["sid"]))
    session.clear()


def _sessions() -> Sessions:
    return current_app.extensions["plba"].accounts().sessions


def nonce() -> str:
    """This response's CSP nonce for the few script tags the layout has."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def secure_headers(response: Any) -> Any:
    """CSP with a nonce, no framing, no sniffing, no caching, same-origin referrers, on every console answer."""
    if not console_request():
        return response
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' 'nonce-{nonce()}'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "same-origin"
    response.vary.add("Cookie")
    return response


def safe_next(target: str | None) -> str:
    """`target` when it is a path of the console itself, else the overview: login never redirects elsewhere."""
    default = PREFIX + "/"
    if not target or not target.startswith(PREFIX + "/") or "\\" in target or "//" in target \
            or any(ord(c) < 32 for c in target):
        return default
    return target
