"""The console over Flask's test client: sessions, CSRF, throttling, cookie flags, headers, roles and escaping."""

from __future__ import annotations

import re

from plba.users import Accounts
from tests.admin.conftest import PASSWORD, XSS, csrf_of, log_in


def client_of(runtime):
    return runtime.control.app.test_client()


def test_pages_need_a_login_and_redirect_to_it(console) -> None:
    client = client_of(console)
    answer = client.get("/admin/queues")
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/admin/login?next=/admin/queues")
    assert client.post("/admin/queues/jobs/retry", data={"all": "1"}).status_code == 401


def test_login_sets_a_signed_httponly_lax_cookie_and_opens_the_pages(console) -> None:
    client = client_of(console)
    answer = log_in(client, "viewer")
    assert answer.status_code == 302 and answer.headers["Location"] == "/admin/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie
    for page in ("/admin/", "/admin/workers", "/admin/queues", "/admin/queues/jobs", "/admin/schedules",
                 "/admin/config", "/admin/loggers", "/admin/plugins", "/admin/audit", "/admin/overview/live",
                 "/admin/traces/0123abcd"):
        assert client.get(page).status_code == 200, page


def test_secure_cookies_when_configured(serve, accounts) -> None:
    from tests.admin.conftest import console_settings

    runtime, _ = serve(settings=console_settings(secure_cookies=True))
    client = runtime.control.app.test_client()
    answer = log_in(client, "viewer")
    assert "Secure" in answer.headers["Set-Cookie"]


def test_every_console_answer_carries_the_security_headers(console) -> None:
    client = client_of(console)
    for answer in (client.get("/admin/login"), client.get("/admin/"), client.get("/admin/static/admin.css")):
        csp = answer.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "script-src 'self' 'nonce-" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["Cache-Control"] == "no-store"
        assert answer.headers["Referrer-Policy"] == "same-origin"


def test_a_post_without_the_csrf_token_is_refused(console) -> None:
    client = client_of(console)
    log_in(client, "operator")
    answer = client.post("/admin/queues/jobs/retry", data={"all": "1"})
    assert answer.status_code == 400
    assert console.registry.queues["jobs"].stats()["dead"] == 3
    assert client.post("/admin/login", data={"username": "operator", "password": PASSWORD}).status_code == 400


def test_the_csrf_header_is_accepted_as_htmx_sends_it(console) -> None:
    client = client_of(console)
    log_in(client, "operator")
    token = csrf_of(client.get("/admin/queues/jobs").get_data(as_text=True))
    answer = client.post("/admin/queues/jobs/retry", data={"all": "1"}, headers={"X-CSRF-Token": token})
    assert answer.status_code == 302


def test_an_operator_retries_and_the_audit_names_the_user(console) -> None:
    client = client_of(console)
    log_in(client, "operator")
    token = csrf_of(client.get("/admin/queues/jobs").get_data(as_text=True))
    answer = client.post("/admin/queues/jobs/retry", data={"all": "1", "csrf_token": token}, follow_redirects=True)
    assert "3 task(s) moved back to jobs" in answer.get_data(as_text=True)
    event = console.actions.audit.recent(1)[0]
    assert (event.actor, event.action, event.target, event.outcome) == ("operator", "queues.requeue", "jobs", "ok")


def test_a_viewer_sees_no_buttons_and_a_crafted_post_is_refused(console) -> None:
    client = client_of(console)
    log_in(client, "viewer")
    page = client.get("/admin/queues/jobs").get_data(as_text=True)
    assert "Retry" not in page and "Purge" not in page
    token = csrf_of(page)
    answer = client.post("/admin/queues/jobs/retry", data={"all": "1", "csrf_token": token})
    assert answer.status_code == 403
    assert console.registry.queues["jobs"].stats()["dead"] == 3
    refused = console.actions.audit.recent(1)[0]
    assert (refused.actor, refused.outcome) == ("viewer", "refused")


def test_purge_is_for_admins_and_needs_the_queue_name(console) -> None:
    client = client_of(console)
    log_in(client, "operator")
    token = csrf_of(client.get("/admin/queues/jobs").get_data(as_text=True))
    assert client.post("/admin/queues/jobs/purge", data={"confirm": "jobs", "csrf_token": token}).status_code == 403
    # The role comes before the typed confirmation: a wrong or missing one is refused the same way.
    assert client.post("/admin/queues/jobs/purge", data={"confirm": "nope", "csrf_token": token}).status_code == 403
    assert client.post("/admin/queues/jobs/purge", data={"csrf_token": token}).status_code == 403
    admin = client_of(console)
    log_in(admin, "admin")
    token = csrf_of(admin.get("/admin/queues/jobs").get_data(as_text=True))
    admin.post("/admin/queues/jobs/purge", data={"confirm": "job", "csrf_token": token})
    assert console.registry.queues["jobs"].stats()["dead"] == 3
    admin.post("/admin/queues/jobs/purge", data={"confirm": "jobs", "what": "dead", "csrf_token": token})
    assert console.registry.queues["jobs"].stats()["dead"] == 0


def test_task_errors_are_shown_as_text(console) -> None:
    client = client_of(console)
    log_in(client, "viewer")
    page = client.get("/admin/queues/jobs").get_data(as_text=True)
    assert XSS not in page
    assert "&lt;script&gt;document.title=" in page


def test_five_failures_throttle_with_retry_after_the_same_for_unknown_users(console) -> None:
    for name in ("operator", "nobody"):
        client = client_of(console)
        answers = [log_in(client, name, "wrong password!") for _ in range(5)]
        assert {answer.status_code for answer in answers} == {401}
        throttled = log_in(client, name, PASSWORD if name == "operator" else "x")
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
    wrong = log_in(client_of(console), "viewer", "wrong password!").get_data(as_text=True)
    unknown = log_in(client_of(console), "ghost", "wrong password!").get_data(as_text=True)
    assert "unknown user or wrong password" in wrong and "unknown user or wrong password" in unknown


def test_login_never_redirects_off_site(console) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "/admin//evil.example",
                   "javascript:alert(1)", "/status"):
        client = client_of(console)
        token = csrf_of(client.get("/admin/login").get_data(as_text=True))
        answer = client.post("/admin/login", data={"username": "viewer", "password": PASSWORD,
                                                   "csrf_token": token, "next": target})
        assert answer.headers["Location"] == "/admin/", target
    client = client_of(console)
    token = csrf_of(client.get("/admin/login").get_data(as_text=True))
    answer = client.post("/admin/login", data={"username": "viewer", "password": PASSWORD, "csrf_token": token,
                                               "next": "/admin/audit?actor=x"})
    assert answer.headers["Location"] == "/admin/audit?actor=x"


def test_logout_closes_the_pages(console) -> None:
    client = client_of(console)
    log_in(client, "viewer")
    token = csrf_of(client.get("/admin/").get_data(as_text=True))
    assert client.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/admin/").status_code == 302


def test_a_password_change_ends_the_users_sessions(console, accounts: Accounts) -> None:
    client = client_of(console)
    log_in(client, "viewer")
    assert client.get("/admin/").status_code == 200
    accounts.users.set_password("viewer", "another long password")
    assert client.get("/admin/").status_code == 302


def test_the_idle_lifetime_ends_a_session(serve, accounts) -> None:
    from tests.admin.conftest import console_settings

    runtime, _ = serve(settings=console_settings(session_idle=0.000001))
    client = runtime.control.app.test_client()
    log_in(client, "viewer")
    assert client.get("/admin/").status_code == 302


def test_bearer_tokens_do_not_open_console_pages_but_expired_and_revoked_ones_fail_on_the_api(console,
                                                                                              accounts) -> None:
    client = client_of(console)
    revoked = accounts.tokens.create("admin")
    accounts.tokens.revoke(revoked.info.id)
    assert client.get("/status", headers={"Authorization": f"Bearer {revoked.secret}"}).status_code == 401
    active = accounts.tokens.create("admin").secret
    assert client.get("/admin/", headers={"Authorization": f"Bearer {active}"}).status_code == 302


def test_the_workers_page_shows_a_worker_on_a_paused_queue_as_paused(console) -> None:
    client = client_of(console)
    log_in(client, "viewer")
    console.registry.queues["jobs"].pause()
    row = re.search(r"<tr><td>jobs-worker</td><td>(\w+)</td>", client.get("/admin/workers").get_data(as_text=True))
    assert row is not None and row.group(1) == "paused"
    console.registry.queues["jobs"].resume()
    row = re.search(r"<tr><td>jobs-worker</td><td>(\w+)</td>", client.get("/admin/workers").get_data(as_text=True))
    assert row is not None and row.group(1) in ("idle", "busy")
