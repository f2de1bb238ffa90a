"""The actions and their guards: tokens, bodies, methods, unknown paths, secrets, stop/start/reload."""

from __future__ import annotations

from pathlib import Path

import pytest

from plba.testing import worker_status
from tests.control.conftest import TOKEN, JobsPlugin, control_settings, wait_state
from tests.helpers import wait_for

ACTIONS = ("/actions/stop", "/actions/start", "/actions/reload")


@pytest.mark.parametrize("path", ACTIONS)
def test_an_action_without_a_token_is_401_with_a_bearer_challenge(serve, path) -> None:
    # Given a control plane with a token configured
    _, http = serve(JobsPlugin(), token=None)
    # When an action is posted without Authorization
    answer = http.post(path, {})
    # Then it is 401, JSON, with WWW-Authenticate: Bearer
    assert answer.status == 401
    assert answer.headers["www-authenticate"].lower().startswith("bearer")
    assert "Authorization: Bearer" in answer.body["error"]


@pytest.mark.parametrize("header", ["Bearer wrong-token", f"Basic {TOKEN}", f"Bearer {TOKEN}x", "Bearer"])
def test_an_action_with_a_wrong_token_is_refused(serve, header) -> None:
    # Given a control plane with a token configured
    runtime, http = serve(JobsPlugin(), token=None)
    # When stop is posted with a wrong or malformed Authorization header
    answer = http.post("/actions/stop", {}, headers={"Authorization": header})
    # Then it is refused (403 for a wrong token, 401 when no bearer token is given) and nothing stops
    assert answer.status in (401, 403)
    assert answer.status == (403 if header.startswith("Bearer ") else 401)
    assert runtime.state == "idle"


def test_actions_are_403_with_how_to_enable_them_when_no_token_is_configured(serve) -> None:
    # Given a control plane without a token
    settings = control_settings()
    del settings["platform"]["control"]["token"]
    runtime, http = serve(JobsPlugin(), settings=settings, token="anything")
    # When an action is posted (with or without a token)
    answers = [http.post("/actions/stop", {}), http.post("/actions/stop", {}, headers={"Authorization": ""})]
    # Then it is 403 saying how to set one, and reads still work
    for answer in answers:
        assert answer.status == 403
        assert "platform.control.token" in answer.body["error"]
        assert "PLBA_PLATFORM__CONTROL__TOKEN" in answer.body["error"]
    assert runtime.state == "idle"
    assert http.get("/status").status == 200


def test_stop_answers_202_then_drains_an_embedded_runtime(serve, gate) -> None:
    # Given an embedded runtime (started, not run) with a task in flight
    runtime, http = serve(JobsPlugin(gate, tasks=1))
    gate.entered.wait(10)
    # When stop is posted
    answer = http.post("/actions/stop", {"force": False, "timeout": None})
    # Then it is accepted at once, and the runtime stops after the task finished
    assert answer.status == 202
    assert answer.body == {"accepted": "stop", "force": False, "timeout": None}
    # The stop runs after the answer: the task is let go only once the drain has begun (the worker
    # was asked to stop), or it could finish before the stop counts what is in flight.
    wait_for(lambda: worker_status(runtime, "jobs-worker")["state"] == "stopping", message="the drain to begin")
    gate.opened.set()
    wait_state(runtime, "stopped")
    assert gate.handled == [{"n": 0}]
    assert runtime.last_stop.finished == 1


def test_a_forced_stop_gives_in_flight_work_back_to_the_queue(serve, gate) -> None:
    # Given a runtime with a task held in its handler
    plugin = JobsPlugin(gate, tasks=1)
    runtime, http = serve(plugin)
    gate.entered.wait(10)
    # When a forced stop is posted
    assert http.post("/actions/stop", {"force": True}).status == 202
    # Then the runtime stops without waiting and the task is queued again
    wait_state(runtime, "stopped")
    assert runtime.last_stop.workers_forced == ["jobs-worker"]
    assert plugin.queue.stats()["depth"] == 1


def test_stop_is_409_when_already_stopped_and_start_brings_the_runtime_back(serve) -> None:
    # Given a runtime stopped through the control plane
    runtime, http = serve(JobsPlugin(tasks=1))
    assert http.post("/actions/stop").status == 202
    wait_state(runtime, "stopped")
    # When stop is posted again, then it is a conflict
    assert http.post("/actions/stop").status == 409
    # When start is posted, then it is accepted and the runtime runs and answers again
    answer = http.post("/actions/start")
    assert answer.status == 202
    assert runtime.state in ("idle", "busy")
    assert http.get("/health/ready").status == 200


def test_start_is_409_while_the_runtime_runs(serve) -> None:
    # Given a running runtime
    _, http = serve(JobsPlugin())
    # When start is posted
    answer = http.post("/actions/start", {})
    # Then it is a conflict naming the state
    assert answer.status == 409
    assert answer.body == {"error": "the runtime is already idle"}


def test_reload_answers_the_changed_keys(serve, isolated: Path) -> None:
    # Given a runtime reading settings.toml in its directory
    settings_file = isolated / "settings.toml"
    settings_file.write_text("[platform]\nhealth_timeout = 5.0\n")
    runtime, http = serve(JobsPlugin())
    # When the file changes and reload is posted
    settings_file.write_text("[platform]\nhealth_timeout = 2.5\n")
    answer = http.post("/actions/reload", {})
    # Then it is 200 with exactly the changed key, and the new value is in force
    assert answer.status == 200
    assert answer.body == {"changed": ["platform.health_timeout"]}
    assert runtime.settings.get("platform.health_timeout") == 2.5


def test_reload_of_invalid_settings_is_422_with_every_problem_and_keeps_the_old_ones(serve, isolated: Path) -> None:
    # Given a runtime whose settings file is then broken in two ways
    settings_file = isolated / "settings.toml"
    runtime, http = serve(JobsPlugin())
    settings_file.write_text("[platform]\nhealth_timeout = -1\n[log]\nlevel = 'LOUD'\n")
    # When reload is posted
    answer = http.post("/actions/reload")
    # Then it is 422 listing both problems, and the old settings stay
    assert answer.status == 422
    assert any("platform.health_timeout" in problem for problem in answer.body["problems"])
    assert any("log.level" in problem for problem in answer.body["problems"])
    assert runtime.settings.get("platform.health_timeout") == 5.0


@pytest.mark.parametrize(("body", "fragment"), [
    ("{not json", "JSON object"),
    ("[]", "JSON object"),
    ('"stop"', "JSON object"),
    ('{"force": "yes"}', "force must be true or false"),
    ('{"force": 1}', "force must be true or false"),
    ('{"timeout": "10"}', "timeout must be null or a number"),
    ('{"timeout": -1}', "timeout must be null or a number"),
    ('{"timeout": true}', "timeout must be null or a number"),
    ('{"timeout": NaN}', "timeout must be null or a number"),
    ('{"timeout": 1e999}', "timeout must be null or a number"),
    ('{"graceful": true}', "unknown field(s): graceful"),
    (b"\xff\xfe", "JSON object"),
])
def test_a_malformed_stop_body_is_400_and_stops_nothing(serve, body, fragment) -> None:
    # Given a running runtime
    runtime, http = serve(JobsPlugin())
    # When stop is posted with a malformed body
    answer = http.post("/actions/stop", body, headers={"Content-Type": "application/json"})
    # Then it is 400 JSON naming the problem, and the runtime still runs
    assert answer.status == 400
    assert fragment in answer.body["error"]
    assert runtime.state == "idle"


@pytest.mark.parametrize("path", ["/actions/start", "/actions/reload"])
def test_actions_without_fields_refuse_unknown_ones(serve, path) -> None:
    # Given a running runtime
    _, http = serve(JobsPlugin())
    # When an action is posted with a field it does not take
    answer = http.post(path, {"force": True})
    # Then it is 400
    assert (answer.status, answer.body) == (400, {"error": "unknown field(s): force (allowed: none)"})


def test_a_body_over_the_limit_is_413(serve) -> None:
    # Given a running runtime
    _, http = serve(JobsPlugin())
    # When a huge body is posted
    answer = http.post("/actions/stop", b"{" + b" " * 100_000 + b"}", headers={"Content-Type": "application/json"})
    # Then it is refused as too large, in JSON
    assert answer.status == 413
    assert "error" in answer.body


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/actions/stop"), ("DELETE", "/actions/stop"), ("POST", "/health"), ("PUT", "/status"),
    ("POST", "/metrics"), ("PATCH", "/plugins"),
])
def test_a_wrong_method_is_405_json_with_allow(serve, method, path) -> None:
    # Given a running runtime
    _, http = serve(JobsPlugin())
    # When an endpoint is called with a method it does not take
    answer = http.request(method, path)
    # Then it is 405, JSON, with an Allow header
    assert answer.status == 405
    assert answer.headers["content-type"] == "application/json"
    assert "allow" in answer.headers
    assert f"{method} is not allowed on {path}" in answer.body["error"]


@pytest.mark.parametrize("path", ["/", "/nope", "/actions/restart", "/health/deep", "/plugins/missing/x",
                                  "/status/../../etc/passwd", "/%ff"])
def test_an_unknown_path_is_404_json(serve, path) -> None:
    # Given a running runtime
    _, http = serve(JobsPlugin())
    # When an unknown path is read
    answer = http.get(path)
    # Then it is 404 JSON, never HTML
    assert answer.status == 404
    assert answer.headers["content-type"] == "application/json"
    assert "error" in answer.body


def test_the_token_and_other_secrets_never_appear_in_any_answer(serve, isolated: Path) -> None:
    # Given secrets in .secrets.toml (the token, and a plugin password, next to an empty table)
    (isolated / ".secrets.toml").write_text(
        f'[platform.control]\ntoken = "{TOKEN}"\n[jobs]\npassword = "hunter2-very-secret"\n[jobs.empty]\n')
    settings = control_settings()
    del settings["platform"]["control"]["token"]

    def leaky(task) -> None:
        raise RuntimeError(f"login failed with hunter2-very-secret and {TOKEN}")

    runtime, http = serve(JobsPlugin(leaky, tasks=1, max_attempts=1), settings=settings)
    wait_state(runtime, "idle")
    # When every endpoint is read and every action tried (also with errors)
    answers = [http.get(path) for path in ("/health", "/health/live", "/health/ready", "/status", "/plugins",
                                            "/metrics", "/openapi.json", "/nope")]
    answers += [http.post("/actions/stop", {"force": "x"}), http.post("/actions/reload"),
                http.post("/actions/start"), http.post("/actions/stop", {}, token="wrong")]
    # Then neither secret is in any of them (the worker's last error is masked)
    for answer in answers:
        assert TOKEN not in answer.text
        assert "hunter2-very-secret" not in answer.text
    assert any("********" in answer.text for answer in answers)


def test_a_forced_stop_during_a_drain_cuts_it_short_and_start_is_409_meanwhile(serve, gate) -> None:
    # Given a runtime draining a task that will not finish by itself
    runtime, http = serve(JobsPlugin(gate, tasks=1))
    gate.entered.wait(10)
    assert http.post("/actions/stop", {"timeout": 600}).status == 202
    wait_state(runtime, "stopping")
    # When start is posted, then it is refused while stopping
    assert http.post("/actions/start").status == 409
    # When a forced stop is posted, then it is accepted and the drain ends without the task
    assert http.post("/actions/stop", {"force": True}).status == 202
    wait_state(runtime, "stopped")
    assert runtime.last_stop.workers_forced == ["jobs-worker"]
