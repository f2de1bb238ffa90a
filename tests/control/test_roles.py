"""Roles on the control plane over real HTTP: who may read, who may act, before and after the first user."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from flask import g, jsonify

from plba.control import auth
from plba.db import open_database
from plba.hookspecs import hookimpl
from plba.users import Accounts
from tests.control.conftest import TOKEN, JobsPlugin, control_settings
from tests.users.conftest import Clock, quick_passwords

PASSWORD = "correct horse battery"
DAY = 86_400.0
CREDENTIALS = ("none", "viewer", "operator", "admin", "service", "expired", "revoked", "wrong")


class WhoPlugin:
    """Plugin routes that answer who the caller is, one of them demanding the admin role inside the view."""

    name = "who"

    @hookimpl
    def register_routes(self, blueprint, runtime) -> None:
        """GET /plugins/who/me, POST /plugins/who/poke, POST /plugins/who/purge (admin, checked in the view)."""
        @blueprint.get("/me")
        def me():
            return jsonify({"actor": g.get("actor")})

        @blueprint.post("/poke")
        def poke():
            return jsonify({"actor": g.actor})

        @blueprint.post("/purge")
        def purge():
            principal = auth.require("admin")
            return jsonify({"actor": principal.actor, "role": str(principal.role)})


@pytest.fixture
def accounts(isolated: Path) -> Accounts:
    """Accounts on the database the served runtimes use (`var/plba.sqlite` in the test's directory)."""
    return Accounts(open_database("var/plba.sqlite"), passwords=quick_passwords())


@pytest.fixture
def tokens(accounts: Accounts) -> dict[str, str | None]:
    """One user per role with a token, plus an expired, a revoked, a wrong and the service token."""
    found: dict[str, str | None] = {"none": None, "service": TOKEN, "wrong": "plba_not-a-token-anyone-issued"}
    for role in ("viewer", "operator", "admin"):
        accounts.users.add(role, role, PASSWORD)
        found[role] = accounts.tokens.create(role).secret
    past = Accounts(accounts.db, passwords=quick_passwords(), clock=Clock(time.time() - 2 * DAY))
    found["expired"] = past.tokens.create("admin", expires_in=DAY).secret
    revoked = accounts.tokens.create("admin")
    accounts.tokens.revoke(revoked.info.id)
    found["revoked"] = revoked.secret
    return found


def statuses(http, tokens, method: str, path: str) -> dict[str, int]:
    """The status each credential gets for one request."""
    return {name: http.request(method, path, token=tokens[name]).status for name in CREDENTIALS}


def test_with_users_reads_need_a_viewer_and_actions_an_operator(serve, tokens) -> None:
    # Given a runtime, and users with tokens in its platform database
    _, http = serve(JobsPlugin(), token=None)
    # When each credential reads and reloads
    reads = statuses(http, tokens, "GET", "/status")
    actions = statuses(http, tokens, "POST", "/actions/reload")
    # Then reads need any valid credential, actions an operator; invalid ones are 401
    assert reads == {"none": 401, "viewer": 200, "operator": 200, "admin": 200, "service": 200,
                     "expired": 401, "revoked": 401, "wrong": 401}
    assert actions == {"none": 401, "viewer": 403, "operator": 200, "admin": 200, "service": 200,
                       "expired": 401, "revoked": 401, "wrong": 401}


def test_refusals_say_why(serve, tokens) -> None:
    # Given users
    _, http = serve(JobsPlugin(), token=None)
    # Then each refusal is JSON saying what is missing
    missing = http.get("/plugins")
    assert missing.body["error"].startswith("this request needs 'Authorization: Bearer <token>'")
    assert missing.headers["www-authenticate"].lower().startswith("bearer")
    assert http.get("/plugins", token=tokens["expired"]).body == {"error": "the bearer token has expired"}
    assert http.get("/plugins", token=tokens["revoked"]).body == {"error": "the bearer token has been revoked"}
    assert "error=invalid_token" in http.get("/plugins", token=tokens["wrong"]).headers["www-authenticate"]
    assert http.post("/actions/stop", token=tokens["viewer"]).body == {
        "error": "viewer has the viewer role; this request needs operator"}


def test_health_probes_stay_open_and_metrics_follow_protect_reads(serve, tokens) -> None:
    # Given users, one runtime with protect_reads off and one with it on
    _, open_http = serve(JobsPlugin(), token=None)
    _, guarded = serve(JobsPlugin(), settings=control_settings(protect_reads=True), token=None)
    # Then the probes answer without a credential on both
    for http in (open_http, guarded):
        for path in ("/health", "/health/live", "/health/ready"):
            assert http.get(path).status == 200, path
    # And metrics are open unless protect_reads, then need a viewer
    assert open_http.get("/metrics").status == 200
    assert guarded.get("/metrics").status == 401
    assert guarded.get("/metrics", token=tokens["viewer"]).status == 200


def test_the_first_user_closes_reads_at_once(serve, accounts) -> None:
    # Given a runtime serving reads openly while nobody has an account
    _, http = serve(JobsPlugin(), token=None)
    assert http.get("/status").status == 200
    # When the first user is added (as `plba users add` does, from outside the process)
    accounts.users.add("alice", "viewer", PASSWORD)
    # Then the next read needs a credential, and alice's token opens it
    assert http.get("/status").status == 401
    assert http.get("/status", token=accounts.tokens.create("alice").secret).status == 200


def test_a_role_change_and_a_removal_apply_to_the_next_request(serve, accounts, tokens) -> None:
    # Given the viewer, refused an action
    _, http = serve(JobsPlugin(), token=None)
    assert http.post("/actions/reload", token=tokens["viewer"]).status == 403
    # When promoted to operator, then the same token may act
    accounts.users.set_role("viewer", "operator")
    assert http.post("/actions/reload", token=tokens["viewer"]).status == 200
    # When removed, then the token is refused altogether
    accounts.users.remove("viewer")
    assert http.get("/status", token=tokens["viewer"]).status == 401


def test_the_actor_is_on_the_request_and_a_view_can_demand_a_higher_role(serve, tokens) -> None:
    # Given plugin routes reporting the actor, one of them demanding admin inside the view
    _, http = serve(WhoPlugin(), token=None)
    # Then a user's token is their name, the service token is "service"
    assert http.get("/plugins/who/me", token=tokens["viewer"]).body == {"actor": "viewer"}
    assert http.post("/plugins/who/poke", token=tokens["service"]).body == {"actor": "service"}
    # And plugin POST routes need an operator by default; the admin check in the view needs admin
    assert http.post("/plugins/who/poke", token=tokens["viewer"]).status == 403
    assert http.post("/plugins/who/purge", token=tokens["operator"]).status == 403
    assert http.post("/plugins/who/purge", token=tokens["admin"]).body == {"actor": "admin", "role": "admin"}


def test_the_cli_token_for_the_service_keeps_working_without_users(serve) -> None:
    # Given no users: then today's rules hold (reads open, actions need the service token, a wrong one is 403)
    _, http = serve(JobsPlugin(), token=None)
    assert http.get("/status").status == 200
    assert http.post("/actions/reload").status == 401
    assert http.post("/actions/reload", token="wrong").status == 403
    assert http.post("/actions/reload", token=TOKEN).status == 200


def test_an_unreadable_platform_database_fails_closed(serve, isolated) -> None:
    # Given garbage where the platform database should be
    (isolated / "var").mkdir()
    (isolated / "var" / "plba.sqlite").write_bytes(b"not a database" * 100)
    _, http = serve(JobsPlugin(), token=None)
    # Then reads and actions are refused with 503 (nobody can tell who may do what); probes still answer
    answer = http.get("/status")
    assert answer.status == 503
    assert answer.body == {"error": "the platform database cannot be read; the runtime's log has the details"}
    assert http.post("/actions/reload", token=TOKEN).status == 503
    assert http.get("/health/live").status == 200
