"""Operating a runtime through the action registry: queues and dead letters, log levels, config, instances, audit."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from plba import Task
from plba.actions import PLATFORM_ACTIONS
from tests.control.conftest import TOKEN, JobsPlugin, control_settings, wait_state
from tests.helpers import plba_env, plba_in_process, wait_for

SECRET_PAYLOAD = {"order": 7, "password": "hunter2-payload"}


class Failing:
    """A handler that fails while `broken` is set, and records what it handled otherwise."""

    def __init__(self) -> None:
        self.broken = True
        self.handled: list[Any] = []

    def __call__(self, task: Task) -> None:
        """Fail or record."""
        if self.broken:
            raise RuntimeError(f"cannot handle {task.payload.get('order')}")
        self.handled.append(task.payload)


def dead_runtime(serve: Any, tasks: int = 3) -> tuple[Any, Any, Failing, JobsPlugin]:
    """A runtime whose `jobs` queue holds `tasks` dead letters (one attempt each)."""
    handler = Failing()
    plugin = JobsPlugin(handler, max_attempts=1)
    runtime, http = serve(plugin)
    for n in range(tasks):
        plugin.queue.publish(Task("job", {**SECRET_PAYLOAD, "order": n}))
    wait_for(lambda: plugin.queue.stats()["dead"] == tasks, message=f"{tasks} dead letters")
    return runtime, http, handler, plugin


def audit_events(http: Any, action: str) -> list[dict[str, Any]]:
    """The audit events of `action`, newest first."""
    return [event for event in http.get("/audit?limit=1000").body["events"] if event["action"] == action]


# -- the registry ------------------------------------------------------------------------------


def test_every_action_declares_the_role_design_gives_it() -> None:
    roles = {action.name: action.role for action in PLATFORM_ACTIONS}
    assert roles == {"stop": "operator", "start": "operator", "reload": "operator", "loggers": "operator",
                     "queues.requeue": "operator", "queues.purge": "admin", "queues.pause": "operator",
                     "queues.resume": "operator", "schedules.run": "operator", "instances.stop": "operator",
                     "users.add": "admin", "users.set_role": "admin", "users.remove": "admin",
                     "tokens.create": "admin", "tokens.revoke": "admin"}


def test_every_action_has_its_route_on_the_control_plane(serve) -> None:
    runtime, _ = serve(JobsPlugin())
    rules = {rule.rule for rule in runtime.control.app.url_map.iter_rules()}
    assert {f"/actions/{action.route}" for action in PLATFORM_ACTIONS} <= rules


# -- queues ------------------------------------------------------------------------------------


def test_queues_lists_every_queue_with_the_design_keys(serve) -> None:
    _, http = serve(JobsPlugin())
    answer = http.get("/queues")
    assert answer.status == 200
    assert answer.body == {"queues": {"jobs": {"backend": "memory", "depth": 0, "in_flight": 0, "delayed": 0,
                                               "dead": 0, "paused": False}}}


def test_dead_letters_are_listed_with_their_errors_and_masked_payloads(serve) -> None:
    _, http, _, _ = dead_runtime(serve)
    answer = http.get("/queues/jobs/dead?limit=2")
    assert answer.status == 200
    tasks = answer.body["tasks"]
    assert [task["payload"]["order"] for task in tasks] == [0, 1]
    assert set(tasks[0]) >= {"id", "name", "attempts", "error", "dead_at", "trace_id", "payload"}
    assert tasks[0]["error"].endswith("cannot handle 0") and tasks[0]["attempts"] == 1
    assert "hunter2" not in answer.text and tasks[0]["payload"]["password"] == "********"
    following = http.get(f"/queues/jobs/dead?limit=2&cursor={answer.body['next_cursor']}").body["tasks"]
    assert [task["payload"]["order"] for task in following] == [2]


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=ten", "cursor=not-a-cursor"])
def test_a_bad_dead_letter_page_is_400(serve, query) -> None:
    _, http = serve(JobsPlugin())
    answer = http.get(f"/queues/jobs/dead?{query}")
    assert answer.status == 400 and answer.body["error"]


def test_requeue_all_moves_the_dead_letters_back_and_they_are_processed_once(serve) -> None:
    runtime, http, handler, plugin = dead_runtime(serve)
    handler.broken = False
    answer = http.post("/actions/queues/jobs/requeue", {"all": True})
    assert (answer.status, answer.body) == (200, {"moved": 3})
    wait_for(lambda: len(handler.handled) == 3, message="three tasks handled")
    assert sorted(payload["order"] for payload in handler.handled) == [0, 1, 2]
    assert plugin.queue.stats()["dead"] == 0
    [event] = audit_events(http, "queues.requeue")
    assert (event["actor"], event["target"], event["outcome"], event["params"]) == ("service", "jobs", "ok",
                                                                                      {"all": True})


def test_requeue_by_id_moves_only_those(serve) -> None:
    _, http, handler, plugin = dead_runtime(serve)
    first = http.get("/queues/jobs/dead").body["tasks"][0]["id"]
    handler.broken = False
    assert http.post("/actions/queues/jobs/requeue", {"ids": [first]}).body == {"moved": 1}
    wait_for(lambda: handler.handled, message="the requeued task handled")
    assert plugin.queue.stats()["dead"] == 2


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"ids": ["no-such-id"]}, 404, "not dead letters"),
    ({}, 400, "either"),
    ({"ids": ["x"], "all": True}, 400, "either"),
    ({"ids": "one-id"}, 400, "list"),
    ({"ids": [f"id-{n}" for n in range(1001)]}, 400, "at most 1000"),
    ({"ids": [7]}, 400, "strings"),
    ({"all": "yes"}, 400, "true or false"),
    ({"everything": True}, 400, "unknown field"),
])
def test_a_bad_requeue_is_refused_and_moves_nothing(serve, body, status, words) -> None:
    _, http, _, plugin = dead_runtime(serve, tasks=2)
    answer = http.post("/actions/queues/jobs/requeue", body)
    assert answer.status == status and words in answer.body["error"]
    assert plugin.queue.stats()["dead"] == 2
    assert audit_events(http, "queues.requeue")[0]["outcome"] == "rejected"


def test_requeue_with_one_unknown_id_among_known_ones_moves_nothing_and_names_it(serve) -> None:
    _, http, _, plugin = dead_runtime(serve, tasks=2)
    known = http.get("/queues/jobs/dead").body["tasks"][0]["id"]
    answer = http.post("/actions/queues/jobs/requeue", {"ids": [known, "typo"]})
    assert answer.status == 404 and answer.body["unknown"] == ["typo"]
    assert plugin.queue.stats()["dead"] == 2


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/queues/nope/dead"), ("POST", "/actions/queues/nope/requeue"), ("POST", "/actions/queues/nope/purge"),
    ("POST", "/actions/queues/nope/pause"), ("POST", "/actions/queues/nope/resume")])
def test_an_unknown_queue_is_a_404_naming_the_known_ones(serve, method, path) -> None:
    _, http = serve(JobsPlugin())
    body = {"what": "dead"} if path.endswith("purge") else ({"all": True} if path.endswith("requeue") else None)
    answer = http.request(method, path, body)
    assert answer.status == 404
    assert answer.body["error"] == "no queue named 'nope' (known: jobs)"


def test_purge_needs_what_and_removes_the_dead_letters(serve) -> None:
    _, http, _, plugin = dead_runtime(serve, tasks=2)
    missing = http.post("/actions/queues/jobs/purge", {})
    assert missing.status == 400 and "what is required" in missing.body["error"]
    wrong = http.post("/actions/queues/jobs/purge", {"what": "everything"})
    assert wrong.status == 400 and "dead, ready" in wrong.body["error"]
    assert plugin.queue.stats()["dead"] == 2
    assert http.post("/actions/queues/jobs/purge", {"what": "dead"}).body == {"removed": 2}
    assert plugin.queue.stats()["dead"] == 0


def test_a_paused_queue_is_not_consumed_and_shows_everywhere_until_resumed(serve) -> None:
    handler = Failing()
    handler.broken = False
    plugin = JobsPlugin(handler)
    runtime, http = serve(plugin)
    assert http.post("/actions/queues/jobs/pause").body == {"queue": "jobs", "paused": True}
    plugin.queue.publish(Task("job", {"order": 1}))
    assert http.get("/queues").body["queues"]["jobs"]["paused"] is True
    assert http.get("/status").body["queues"]["jobs"]["paused"] is True
    assert "plba_queue_paused{queue=\"jobs\"} 1.0" in http.get("/metrics").text
    assert handler.handled == [] and plugin.queue.stats()["depth"] == 1
    assert http.post("/actions/queues/jobs/resume").body == {"queue": "jobs", "paused": False}
    wait_for(lambda: handler.handled == [{"order": 1}], message="the task handled after resume")


def test_pausing_a_critical_workers_queue_keeps_the_instance_ready_and_says_paused(serve, isolated) -> None:
    """Given a runtime whose only (critical) worker consumes `jobs`, when an operator pauses `jobs`.

    Then health stays ok with the pause as the worker's detail, readiness stays 200, and the
    worker's status says paused (its state stays idle); after resume the flag is gone.
    """
    plugin = JobsPlugin()
    runtime, http = serve(plugin)
    assert runtime.supervisor.workers[0].critical
    assert http.post("/actions/queues/jobs/pause").status == 200
    health = http.get("/health")
    assert health.status == 200 and health.body["status"] == "ok"
    assert "paused" in health.body["components"]["jobs-worker"]["detail"]
    ready = http.get("/health/ready")
    assert ready.status == 200, ready.text
    worker = http.get("/status").body["workers"][0]
    assert worker["paused"] is True and worker["state"] == "idle"
    shown = plba_in_process("status", "--url", runtime.control.url, cwd=isolated, env=plba_env(COLUMNS="200"))
    assert shown.returncode == 0 and "jobs-worker  paused" in shown.stdout, shown.stdout
    assert http.post("/actions/queues/jobs/resume").status == 200
    assert http.get("/status").body["workers"][0]["paused"] is False
    assert http.get("/health/ready").status == 200


# -- log levels --------------------------------------------------------------------------------


def test_loggers_lists_the_platform_and_plugin_loggers(serve) -> None:
    _, http = serve(JobsPlugin())
    levels = http.get("/loggers").body["loggers"]
    assert {"root", "plba", "plba.control", "jobs"} <= set(levels)
    assert levels["root"]["effective"] in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def test_a_level_set_for_a_while_reverts_by_itself(serve) -> None:
    _, http = serve(JobsPlugin())
    target = logging.getLogger("jobs")
    before = target.level
    answer = http.post("/actions/loggers", {"logger": "jobs", "level": "debug", "revert_after": 1})
    assert answer.status == 200 and answer.body["level"] == "DEBUG" and answer.body["revert_at"]
    assert target.level == logging.DEBUG
    assert http.get("/loggers").body["loggers"]["jobs"]["revert_at"] == answer.body["revert_at"]
    wait_for(lambda: target.level == before, message="the old level back")
    assert http.get("/loggers").body["loggers"]["jobs"]["revert_at"] is None
    [event] = audit_events(http, "loggers")
    assert event["outcome"] == "ok" and event["params"]["level"] == "debug"


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"logger": "jobs", "level": "LOUD"}, 400, "DEBUG, INFO"),
    ({"logger": "jobs", "level": 10}, 400, "DEBUG, INFO"),
    ({"logger": "jobs"}, 400, "level is required"),
    ({"logger": "jobs", "level": "INFO", "revert_after": 0}, 400, "revert_after"),
    ({"logger": "urllib3", "level": "INFO"}, 404, "not the platform's"),
])
def test_a_bad_level_change_is_refused_and_changes_nothing(serve, body, status, words) -> None:
    _, http = serve(JobsPlugin())
    before = logging.getLogger("jobs").level
    answer = http.post("/actions/loggers", body)
    assert answer.status == status and words in answer.body["error"]
    assert logging.getLogger("jobs").level == before


# -- config, instances -------------------------------------------------------------------------


def test_config_shows_masked_settings_with_the_layer_of_every_key(serve) -> None:
    _, http = serve(JobsPlugin())
    answer = http.get("/config")
    assert answer.status == 200
    assert answer.body["settings"]["platform"]["control"]["token"] == "********"
    assert TOKEN not in answer.text
    assert answer.body["origins"]["platform.control.token"] == "overrides"
    assert answer.body["origins"]["platform.shutdown_timeout"] in ("overrides", "default")


def test_instances_lists_this_one_without_a_cluster_url(serve) -> None:
    runtime, http = serve(JobsPlugin())
    [me] = http.get("/instances").body["instances"]
    assert set(me) == {"id", "host", "pid", "version", "state", "started_at", "last_seen", "plugins", "workers",
                       "control_url"}
    assert me["id"] == runtime.cluster.owner and me["plugins"] == ["jobs"]
    assert me["workers"]["total"] == 1 and me["control_url"] == runtime.control.url


def test_stopping_an_unknown_instance_is_404_and_stopping_this_one_stops_it(serve) -> None:
    runtime, http = serve(JobsPlugin())
    unknown = http.post("/actions/instances/nobody:1:x/stop", {})
    assert unknown.status == 404 and runtime.cluster.owner in unknown.body["error"]
    assert http.post(f"/actions/instances/{runtime.cluster.owner}/stop", {}).status == 202
    wait_state(runtime, "stopped")


# -- audit -------------------------------------------------------------------------------------


def test_a_refused_action_is_audited_with_who_and_why(serve) -> None:
    runtime, http = serve(JobsPlugin(), token=None)
    assert http.post("/actions/queues/jobs/pause").status == 401
    assert http.post("/actions/queues/jobs/pause", token="wrong").status == 403
    events = http.get("/audit").body["events"]
    assert [(e["action"], e["actor"], e["outcome"]) for e in events] == [("queues.pause", "anonymous", "refused")] * 2
    assert events[0]["remote_addr"] == "127.0.0.1" and "does not match" in events[0]["detail"]
    assert runtime.registry.queues["jobs"].is_paused() is False


def test_audit_events_keep_masked_params_and_short_lists(serve) -> None:
    _, http = serve(JobsPlugin())
    http.post("/actions/queues/jobs/requeue", {"ids": [f"id-{n}" for n in range(50)]})
    http.post("/actions/loggers", {"logger": "jobs", "level": "INFO", "password": "p4ssw0rd-audit"})
    requeue, = audit_events(http, "queues.requeue")
    assert len(requeue["params"]["ids"]) == 21 and requeue["params"]["ids"][-1] == "... 30 more"
    level, = audit_events(http, "loggers")
    assert level["params"]["password"] == "********" and level["outcome"] == "rejected"


@pytest.mark.parametrize("query", ["limit=0", "limit=x", "limit=5000"])
def test_a_bad_audit_limit_is_400(serve, query) -> None:
    _, http = serve(JobsPlugin())
    assert http.get(f"/audit?{query}").status == 400


def test_metrics_count_actions_by_outcome_and_instances_seen(serve) -> None:
    _, http = serve(JobsPlugin())
    http.post("/actions/queues/jobs/pause")
    http.post("/actions/queues/nope/pause")
    text = http.get("/metrics").text
    assert 'plba_actions_total{action="queues.pause",outcome="ok"} 1.0' in text
    assert 'plba_actions_total{action="queues.pause",outcome="rejected"} 1.0' in text
    assert "plba_instances 1.0" in text


def test_the_audit_log_lives_in_the_platform_database(serve, isolated) -> None:
    settings = control_settings()
    settings["platform"]["database"] = "state/platform.sqlite"
    _, http = serve(JobsPlugin(), settings=settings)
    http.post("/actions/queues/jobs/pause")
    import sqlite3

    rows = sqlite3.connect(isolated / "state" / "platform.sqlite").execute(
        "SELECT actor, action, target, outcome FROM plba_audit").fetchall()
    assert rows == [("service", "queues.pause", "jobs", "ok")]


def test_a_reload_that_changes_the_log_section_applies_it(serve, isolated) -> None:
    (isolated / "settings.toml").write_text("[log]\nlevel = 'INFO'\n")
    _, http = serve(JobsPlugin())
    root = logging.getLogger()
    before = root.level
    try:
        (isolated / "settings.toml").write_text("[log]\nlevel = 'ERROR'\n")
        assert http.post("/actions/reload", {}).body == {"changed": ["log.level"]}
        assert root.level == logging.ERROR
        assert http.get("/loggers").body["loggers"]["root"]["level"] == "ERROR"
    finally:
        root.setLevel(before)


def test_the_fleet_read_commands_print_tables_and_say_when_there_is_nothing(serve, isolated) -> None:
    """Given a runtime with 2 dead letters and one audited action, then each read command prints its table.

    And a queue without dead letters and an empty audit log are said in one line.
    """
    runtime, http, _, _ = dead_runtime(serve, tasks=2)
    env = plba_env(COLUMNS="200")

    def shown(*args: str) -> str:
        answer = plba_in_process(*args, "--url", runtime.control.url, cwd=isolated, env=env)
        assert answer.returncode == 0, answer.stdout + answer.stderr
        return answer.stdout

    assert shown("audit") == "no audit events yet\n"
    assert "jobs" in shown("queues", "list") and "Queues" in shown("queues", "list")
    dead = shown("queues", "dead", "jobs")
    assert "Dead tasks in jobs" in dead and "cannot handle 0" in dead and "cannot handle 1" in dead
    assert runtime.cluster.owner in shown("instances")
    assert "plba" in shown("loggers")
    assert http.post("/actions/queues/jobs/purge", {"what": "dead"}).body == {"removed": 2}
    assert shown("queues", "dead", "jobs") == "no dead tasks in jobs\n"
    assert "purge" in shown("audit")
