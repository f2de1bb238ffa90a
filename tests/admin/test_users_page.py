"""The users page over Flask's test client: admins only, CSRF, the CLI's rules, tokens shown once, no lock-out."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from plba.users import Accounts
from tests.admin.conftest import XSS, console_settings, csrf_of, log_in

NEW_PASSWORD = "another long passphrase"
# Every state-changing path of the page, each with a form that would otherwise succeed.
POSTS = (
    ("/admin/users/add", {"name": "mallory", "role": "admin", "password": NEW_PASSWORD, "password2": NEW_PASSWORD}),
    ("/admin/users/viewer/role", {"role": "admin"}),
    ("/admin/users/admin/remove", {"confirm": "admin"}),
    ("/admin/users/viewer/tokens", {"expires_days": "1"}),
    ("/admin/users/tokens/{token}/revoke", {}),
)


@pytest.fixture
def site(serve, accounts) -> Any:
    """A runtime serving the console, with one user per role (viewer, operator, admin)."""
    runtime, _ = serve(settings=console_settings())
    return runtime


def logged_in(runtime: Any, name: str) -> Any:
    """A test client logged in as `name`."""
    client = runtime.control.app.test_client()
    assert log_in(client, name).status_code == 302
    return client


def post(client: Any, path: str, form: dict[str, str], **kwargs: Any) -> Any:
    """POST `form` to `path` with the CSRF token of the overview page."""
    token = csrf_of(client.get("/admin/").get_data(as_text=True))
    return client.post(path, data={**form, "csrf_token": token}, **kwargs)


def flashes(page: str) -> list[str]:
    """The flash messages on a page, as text."""
    return [html.unescape(text) for text in re.findall(r'<p class="flash \w+" role="status">(.*?)</p>', page)]


def session_of(runtime: Any, answer: Any) -> dict[str, Any]:
    """What the console's session cookie set by `answer` holds, decoded."""
    app = runtime.control.app
    cookie = answer.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    return dict(app.session_interface.get_signing_serializer(app).loads(cookie))


# -- who may ------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_below_admin_the_page_and_every_crafted_post_are_refused(site, accounts: Accounts, role: str) -> None:
    # Given a token to revoke and a user of a role below admin
    token = accounts.tokens.create("admin")
    client = logged_in(site, role)
    # Then there is no Users menu, the page answers 403, and so does every POST, changing nothing
    assert 'href="/admin/users"' not in client.get("/admin/").get_data(as_text=True)
    assert client.get("/admin/users").status_code == 403
    for path, form in POSTS:
        answer = post(client, path.format(token=token.info.id), form)
        assert answer.status_code == 403, path
    assert [(user.name, user.role) for user in accounts.users.list()] == [
        ("admin", "admin"), ("operator", "operator"), ("viewer", "viewer")]
    assert [info.state for info in accounts.tokens.list()] == ["active"]
    # And each refusal is audited with the user as actor
    refused = site.actions.audit.recent(len(POSTS))
    assert {(event.actor, event.outcome) for event in refused} == {(role, "refused")}
    assert {event.action for event in refused} == {"users.add", "users.set_role", "users.remove", "tokens.create",
                                                   "tokens.revoke"}


def test_an_admin_sees_the_menu_and_the_page(site, accounts: Accounts) -> None:
    accounts.tokens.create("operator", 86_400.0)
    client = logged_in(site, "admin")
    assert 'href="/admin/users">Users</a>' in client.get("/admin/").get_data(as_text=True)
    page = client.get("/admin/users").get_data(as_text=True)
    assert page.count('<tr class="user"') == 3 and page.count('<tr class="token state-active"') == 1
    row = re.search(r'<tr class="user" data-user="operator">.*?</tr>', page, re.S).group(0)
    assert '<td class="active-tokens">1</td>' in row


def test_a_post_without_the_csrf_token_is_refused(site, accounts: Accounts) -> None:
    client = logged_in(site, "admin")
    answer = client.post("/admin/users/add", data=dict(POSTS[0][1]))
    assert answer.status_code == 400
    assert accounts.users.get("mallory") is None


def test_without_a_session_a_post_is_refused_and_the_page_asks_for_a_login(site, accounts: Accounts) -> None:
    client = site.control.app.test_client()
    assert client.get("/admin/users").headers["Location"].startswith("/admin/login")
    assert client.post("/admin/users/add", data=dict(POSTS[0][1])).status_code == 401
    assert accounts.users.get("mallory") is None


# -- adding, changing, removing ----------------------------------------------------------------


def test_an_admin_adds_a_user_who_can_log_in_and_the_audit_hides_the_password(site, accounts: Accounts) -> None:
    client = logged_in(site, "admin")
    answer = post(client, "/admin/users/add", {"name": "dave", "role": "operator", "password": NEW_PASSWORD,
                                               "password2": NEW_PASSWORD}, follow_redirects=True)
    assert flashes(answer.get_data(as_text=True)) == ["added user dave (operator)"]
    assert accounts.users.require("dave").role == "operator"
    assert log_in(site.control.app.test_client(), "dave", NEW_PASSWORD).status_code == 302
    event = next(e for e in site.actions.audit.recent(20) if e.action == "users.add")
    assert (event.actor, event.target, event.outcome) == ("admin", None, "ok")
    assert event.params["name"] == "dave" and event.params["password"] == "********"
    assert NEW_PASSWORD not in json.dumps([e.to_dict() for e in site.actions.audit.recent(100)])


@pytest.mark.parametrize(("form", "message"), [
    ({"name": "erin", "role": "viewer", "password": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
     "the two passwords do not match"),
    ({"name": "erin", "role": "viewer", "password": "short", "password2": "short"},
     "the password is too short: use at least 12 characters"),
    ({"name": "erin", "role": "viewer", "password": "x" * 5000, "password2": "x" * 5000},
     "the password is too long: use at most 1024 characters"),
    ({"name": "viewer", "role": "viewer", "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
     "a user named 'viewer' already exists"),
    ({"name": "erin", "role": "king", "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
     "unknown role 'king': choose viewer, operator or admin"),
    ({"name": "service", "role": "viewer", "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
     "the user name 'service' is reserved"),
    ({"name": "erin", "role": "viewer"}, "the password is empty"),
    ({"role": "viewer", "password": NEW_PASSWORD, "password2": NEW_PASSWORD},
     "name must be a user name of 1 to 200 characters, not ''"),
])
def test_adding_refuses_what_the_command_line_refuses_in_one_line(site, accounts: Accounts, form, message) -> None:
    client = logged_in(site, "admin")
    answer = post(client, "/admin/users/add", form, follow_redirects=True)
    assert answer.status_code == 200
    assert flashes(answer.get_data(as_text=True)) == [message]
    assert [user.name for user in accounts.users.list()] == ["admin", "operator", "viewer"]


def test_a_password_in_the_query_string_is_not_taken(site, accounts: Accounts) -> None:
    client = logged_in(site, "admin")
    answer = post(client, f"/admin/users/add?password={NEW_PASSWORD}&password2={NEW_PASSWORD}",
                  {"name": "erin", "role": "viewer"}, follow_redirects=True)
    assert flashes(answer.get_data(as_text=True)) == ["the password is empty"]
    assert accounts.users.get("erin") is None


def test_markup_as_a_user_name_is_refused_and_shown_as_text(site, accounts: Accounts) -> None:
    client = logged_in(site, "admin")
    answer = post(client, "/admin/users/add", {"name": XSS[:60], "role": "viewer", "password": NEW_PASSWORD,
                                               "password2": NEW_PASSWORD}, follow_redirects=True)
    page = answer.get_data(as_text=True)
    assert flashes(page)[0].startswith("invalid user name '<script>document.title=")
    assert "<script>document" not in page and "&lt;script&gt;document" in page
    assert len(accounts.users.list()) == 3


def test_a_role_change_applies_to_the_users_next_request(site, accounts: Accounts) -> None:
    operator = logged_in(site, "operator")
    assert operator.get("/admin/users").status_code == 403
    answer = post(logged_in(site, "admin"), "/admin/users/operator/role", {"role": "admin"}, follow_redirects=True)
    assert flashes(answer.get_data(as_text=True)) == ["operator now has the admin role"]
    assert operator.get("/admin/users").status_code == 200


def test_removing_needs_the_name_typed_and_ends_the_users_session_and_tokens(site, accounts: Accounts) -> None:
    # Given the viewer, logged in and with a token
    viewer = logged_in(site, "viewer")
    token = accounts.tokens.create("viewer").secret
    admin = logged_in(site, "admin")
    # When the admin mistypes the name, then nothing is removed
    answer = post(admin, "/admin/users/viewer/remove", {"confirm": "viewr"}, follow_redirects=True)
    assert flashes(answer.get_data(as_text=True)) == [
        "type the user's name (viewer) to confirm the removal; nothing was removed"]
    assert viewer.get("/admin/").status_code == 200
    # When the name is typed, then the user is gone, their session and token with them
    answer = post(admin, "/admin/users/viewer/remove", {"confirm": "viewer"}, follow_redirects=True)
    assert flashes(answer.get_data(as_text=True)) == ["removed user viewer, their sessions and tokens"]
    assert accounts.users.get("viewer") is None
    assert viewer.get("/admin/").status_code == 302
    assert site.control.app.test_client().get("/status", headers={"Authorization": f"Bearer {token}"}).status_code \
        == 401


def test_the_only_admin_is_neither_removed_nor_demoted(site, accounts: Accounts) -> None:
    admin = logged_in(site, "admin")
    for path, form in (("/admin/users/admin/role", {"role": "operator"}),
                       ("/admin/users/admin/remove", {"confirm": "admin"})):
        answer = post(admin, path, form, follow_redirects=True)
        assert flashes(answer.get_data(as_text=True)) == [
            "admin is the only admin: give another user the admin role first, so that someone can still manage users"]
    assert accounts.users.require("admin").role == "admin"
    event = site.actions.audit.recent(1)[0]
    assert (event.action, event.outcome) == ("users.remove", "rejected")
    # Once another admin exists, the first may step down, and is sent to the overview
    post(admin, "/admin/users/viewer/role", {"role": "admin"})
    answer = post(admin, "/admin/users/admin/role", {"role": "viewer"})
    assert answer.headers["Location"] == "/admin/"
    assert admin.get("/admin/users").status_code == 403


def test_garbage_gets_one_line_and_never_a_server_error(site, accounts: Accounts) -> None:
    admin = logged_in(site, "admin")
    cases = [
        ("/admin/users/add", {"name": "n" * 20_000, "role": "r" * 20_000, "password": "p", "password2": "p"}),
        ("/admin/users/viewer/role", {"role": "king"}),
        ("/admin/users/viewer/role", {"role": "x" * 20_000}),
        ("/admin/users/viewer/role", {}),
        ("/admin/users/ghost/role", {"role": "admin"}),
        ("/admin/users/ghost/remove", {"confirm": "ghost"}),
        ("/admin/users/ghost/tokens", {}),
        ("/admin/users/tokens/nope/revoke", {}),
        (f"/admin/users/tokens/{'z' * 3000}/revoke", {}),
        *[("/admin/users/viewer/tokens", {"expires_days": days})
          for days in ("abc", "0", "-1", "1e400", "9" * 5000, "3651", "1.5")],
    ]
    for path, form in cases:
        answer = post(admin, path, form)
        assert answer.status_code == 302, (path[:60], form)
        page = admin.get("/admin/users").get_data(as_text=True)
        messages = flashes(page)
        assert len(messages) == 1 and len(messages[0]) <= 300 and "\n" not in messages[0], (path[:60], messages)
    # A body over platform.control.max_body is refused before it is read
    assert post(admin, "/admin/users/add", {"name": "n" * 100_000}).status_code == 413
    assert accounts.tokens.list() == []
    assert [(user.name, user.role) for user in accounts.users.list()] == [
        ("admin", "admin"), ("operator", "operator"), ("viewer", "viewer")]


# -- tokens ------------------------------------------------------------------------------------


def test_a_token_is_shown_once_works_as_a_bearer_token_and_is_refused_once_revoked(site, accounts: Accounts) -> None:
    admin = logged_in(site, "admin")
    # When the admin creates a token for the operator, expiring in 7 days
    answer = post(admin, "/admin/users/operator/tokens", {"expires_days": "7"})
    # Then the answer's own page shows it, once, and neither the flash nor the cookie holds it
    assert answer.status_code == 200
    page = answer.get_data(as_text=True)
    secret = re.search(r'<pre id="token-value">(plba_[^<]+)</pre>', page).group(1)
    assert answer.headers["Cache-Control"] == "no-store"
    assert all(secret not in message for message in flashes(page))
    assert flashes(page)[0].startswith("created token ") and flashes(page)[0].endswith("it is shown only once")
    assert secret not in json.dumps(session_of(site, answer))
    again = admin.get("/admin/users").get_data(as_text=True)
    assert secret not in again and '<tr class="token state-active"' in again
    info = accounts.tokens.list()[0]
    assert info.user == "operator" and info.expires_at is not None
    # And it works as a bearer token with the operator's role
    api = site.control.app.test_client()
    bearer = {"Authorization": f"Bearer {secret}"}
    assert api.get("/status", headers=bearer).status_code == 200
    # When it is revoked, then it is refused
    answer = post(admin, f"/admin/users/tokens/{info.id}/revoke", {}, follow_redirects=True)
    assert flashes(answer.get_data(as_text=True)) == [f"revoked token {info.id} of operator"]
    assert api.get("/status", headers=bearer).status_code == 401
    # And the audit log names the admin and never holds the token
    actions = [(e.actor, e.action, e.target) for e in site.actions.audit.recent(2)]
    assert actions == [("admin", "tokens.revoke", info.id), ("admin", "tokens.create", "operator")]
    assert secret not in json.dumps([e.to_dict() for e in site.actions.audit.recent(100)])


# -- sessions ----------------------------------------------------------------------------------


def test_a_replayed_cookie_after_logout_is_refused(site, accounts: Accounts) -> None:
    # Given a copy of the admin's session cookie
    admin = logged_in(site, "admin")
    cookie = admin.get_cookie("plba_admin", path="/admin").value
    token = csrf_of(admin.get("/admin/").get_data(as_text=True))
    # When the admin logs out
    assert admin.post("/admin/logout", data={"csrf_token": token}).status_code == 302
    # Then the copy opens nothing: pages ask for a login, posts are refused
    thief = site.control.app.test_client()
    thief.set_cookie("plba_admin", cookie, path="/admin")
    assert thief.get("/admin/users").headers["Location"].startswith("/admin/login")
    answer = thief.post("/admin/users/add", data={**POSTS[0][1], "csrf_token": token})
    assert answer.status_code in (400, 401)
    assert accounts.users.get("mallory") is None
    with accounts.db.transaction() as tx:
        assert tx.all("SELECT hash FROM plba_sessions") == []


# -- the API -----------------------------------------------------------------------------------


def test_the_api_actions_are_admin_only_and_never_echo_a_password(site, accounts: Accounts) -> None:
    api = site.control.app.test_client()
    operator = {"Authorization": f"Bearer {accounts.tokens.create('operator').secret}"}
    admin = {"Authorization": f"Bearer {accounts.tokens.create('admin').secret}"}
    body = {"name": "erin", "role": "viewer", "password": NEW_PASSWORD}
    assert api.post("/actions/users", json=body, headers=operator).status_code == 403
    for wrong, message in (({**body, "password": "Zq7!"}, "the password is too short: use at least 12 characters"),
                           ({**body, "password": 1234567}, "password must be a string")):
        answer = api.post("/actions/users", json=wrong, headers=admin)
        assert (answer.status_code, answer.get_json()) == (400, {"error": message})
    answer = api.post("/actions/users", json=body, headers=admin)
    assert answer.status_code == 200 and NEW_PASSWORD not in answer.get_data(as_text=True)
    assert answer.get_json()["name"] == "erin"
    created = api.post("/actions/users/erin/tokens", json={"expires_days": 1}, headers=admin).get_json()
    assert created["user"] == "erin" and created["token"].startswith("plba_")
    assert api.post("/actions/users/erin/tokens", json={"expires_days": 10**400}, headers=admin).status_code == 400
    assert api.post("/actions/users/ghost/role", json={"role": "admin"}, headers=admin).status_code == 404
    assert api.post("/actions/users/admin/remove", headers=admin).status_code == 409
    assert NEW_PASSWORD not in json.dumps([e.to_dict() for e in site.actions.audit.recent(100)])
