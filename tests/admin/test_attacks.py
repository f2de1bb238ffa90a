"""What a hostile client tries against the console, and what it gets: one clear answer, never a 5xx or a way in."""

from __future__ import annotations

from typing import Any

from tests.admin.conftest import console_settings, csrf_of, log_in
from tests.control.test_waitress_ext import assert_safe_headers, exchange


def logged_in(runtime: Any, name: str) -> tuple[Any, str]:
    """A test client logged in as `name`, and its CSRF token."""
    client = runtime.control.app.test_client()
    assert log_in(client, name).status_code == 302
    return client, csrf_of(client.get("/admin/").get_data(as_text=True))


def test_answers_the_server_writes_itself_carry_the_consoles_headers(serve, accounts) -> None:
    runtime, _ = serve(settings=console_settings())
    port = runtime.control.port
    too_big = exchange(port, b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
    no_session = exchange(port, b"POST /admin/loggers/set HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
    big_cookie = exchange(port, b"GET /admin/ HTTP/1.1\r\nHost: x\r\nCookie: plba_admin=" + b"a" * 40_000 + b"\r\n\r\n")
    for (code, headers, _), expected in ((too_big, 413), (no_session, 401), (big_cookie, 431)):
        assert code == expected
        assert_safe_headers(headers)


def test_digits_that_int_refuses_get_a_refusal_not_a_server_error(serve, accounts) -> None:
    runtime, _ = serve(settings=console_settings())
    admin, token = logged_in(runtime, "admin")
    # "²" and "١٢" are digits to str.isdigit(); only ASCII digits are taken as numbers.
    for minutes in ("²", "١٢"):
        answer = admin.post("/admin/loggers/set", data={"logger": "attack.probe", "level": "DEBUG", "minutes": minutes,
                                                        "csrf_token": token})
        assert answer.status_code == 302, minutes
    for days in ("²", "١٢"):
        answer = admin.post("/admin/users/viewer/tokens", data={"expires_days": days, "csrf_token": token})
        assert answer.status_code == 302, days
    assert accounts.tokens.list() == []
