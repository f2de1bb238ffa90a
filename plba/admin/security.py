"""The console's session, CSRF and response headers.

Sessions are Flask's signed cookies (itsdangerous) holding the user's `session_id`, the login
time and the last request time: the idle and absolute lifetimes are checked on every request,
and a password change or removal ends every session of the user (its `session_id` changes).
The session is loaded before the app's authorization hook, so `plba.control.auth.require`
sees the user as `g.principal` like a bearer token's.
"""

from __future__ import annotations

import secrets
import time
from datetime import timedelta
from typing import Any

from flask import Flask, current_app, g, request, session
from flask_wtf.csrf import CSRFProtect

from plba.admin.secret import secret_key
from plba.users import Principal, User

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
    """Put the session's user on `g.user`, `g.principal` and `g.actor`; end a session past its lifetimes."""
    if not console_request() or "sid" not in session:
        return
    settings = current_app.extensions["plba"].runtime.settings
    now = time.time()
    login_at, seen_at = float(session.get("login_at", 0)), float(session.get("seen_at", 0))
    expired = (now - login_at > float(settings.get("platform.admin.session_max"))
               or now - seen_at > float(settings.get("platform.admin.session_idle")))
    user = None if expired else current_app.extensions["plba"].accounts().users.by_session_id(str(session["sid"]))
    if user is None:
        session.clear()
        return
    # Written back at most once a minute, so polling does not send a new cookie every few seconds.
    if now - seen_at > 60:
        session["seen_at"] = now
    g.user = user
    g.principal = Principal(user.name, user.role, "session")
    g.actor = user.name


def start_session(user: User) -> None:
    """A fresh session for `user`: everything before is dropped, so no earlier cookie carries over."""
    session.clear()
    now = time.time()
    session.permanent = True
    session.update(sid=user.session_id, login_at=now, seen_at=now)


def end_session() -> None:
    """Forget the session (the browser gets an expired cookie)."""
    session.clear()


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
