"""The read endpoints against a real waitress server: health, probes, status, plugins, metrics, OpenAPI."""

from __future__ import annotations

import re

import pytest

from plba.contracts import WorkerHealth
from plba.hookspecs import hookimpl
from plba.testing import drain
from tests.control.conftest import TOKEN, JobsPlugin, control_settings, wait_state
from tests.helpers import wait_for


class CheckPlugin:
    """A plugin with one health check whose reading the test sets."""

    name = "checks"

    def __init__(self, status: str = "ok", critical: bool = True) -> None:
        self.reading = WorkerHealth(status, "as set by the test")
        self.critical = critical

    @hookimpl
    def register_health(self, registry) -> None:
        """Add the `db` check."""
        registry.add_health("db", lambda: self.reading, critical=self.critical)


def test_health_is_ok_with_every_component(serve) -> None:
    # Given a runtime with a worker and a passing check
    _, http = serve(JobsPlugin(), CheckPlugin())
    # When health is read
    answer = http.get("/health")
    # Then it is 200 with each component
    assert answer.status == 200
    assert answer.body["status"] == "ok"
    assert set(answer.body["components"]) == {"jobs-worker", "db"}


def test_health_is_503_when_a_critical_component_is_unhealthy(serve) -> None:
    # Given a critical check that reports unhealthy
    _, http = serve(CheckPlugin("unhealthy"))
    # When health is read
    answer = http.get("/health")
    # Then it is 503 and says why
    assert answer.status == 503
    assert answer.body["status"] == "unhealthy"
    assert answer.body["components"]["db"]["detail"] == "as set by the test"


def test_health_is_200_and_degraded_when_only_a_non_critical_component_fails(serve) -> None:
    # Given a non-critical check that reports unhealthy
    _, http = serve(CheckPlugin("unhealthy", critical=False))
    # When health is read
    answer = http.get("/health")
    # Then the runtime is degraded but still serves
    assert (answer.status, answer.body["status"]) == (200, "degraded")


def test_readiness_follows_critical_components(serve) -> None:
    # Given a runtime whose critical check can be switched
    checks = CheckPlugin()
    _, http = serve(checks)
    # When the check is ok, then the runtime is ready
    assert http.get("/health/ready").status == 200
    # When it turns unhealthy, then readiness is 503 with the reason (once platform.health_cache has passed)
    checks.reading = WorkerHealth("unhealthy", "database unreachable")
    answer = wait_for(lambda: (lambda a: a if a.status == 503 else None)(http.get("/health/ready")))
    assert answer.body == {"ready": False, "reason": "db is unhealthy: database unreachable"}


def test_liveness_fails_while_a_worker_holds_a_task_too_long(serve, gate) -> None:
    # Given a worker stuck on a task beyond stuck_after
    _, http = serve(JobsPlugin(gate, tasks=1), settings=control_settings(stuck_after=0.01))
    gate.entered.wait(10)
    # When liveness is read (once the task has been held past the limit)
    answer = wait_for(lambda: (lambda a: a if a.status == 503 else None)(http.get("/health/live")))
    # Then it is 503 naming the worker; once the task finishes it is 200 again
    assert "jobs-worker" in answer.body["reason"]
    gate.opened.set()
    assert wait_for(lambda: http.get("/health/live").status == 200)
    assert http.get("/health/live").body == {"live": True, "reason": "making progress"}


def test_readiness_turns_false_during_a_graceful_stop_while_the_control_plane_still_answers(serve, gate) -> None:
    # Given a runtime with a task in flight
    runtime, http = serve(JobsPlugin(gate, tasks=1))
    gate.entered.wait(10)
    assert http.get("/health/ready").status == 200
    # When a graceful stop is requested
    assert http.post("/actions/stop", {}).status == 202
    wait_state(runtime, "stopping")
    # Then readiness is 503 and status still answers while the task drains
    ready = http.get("/health/ready")
    assert (ready.status, ready.body["reason"]) == (503, "runtime is stopping")
    assert http.get("/status").body["state"] == "stopping"
    # And the drain finishes the task
    gate.opened.set()
    wait_state(runtime, "stopped")
    assert gate.handled == [{"n": 0}]


def test_status_reports_state_workers_queues_and_plugins(serve) -> None:
    # Given a runtime that processed three tasks
    runtime, http = serve(JobsPlugin(tasks=3))
    drain(runtime)
    # When status is read
    body = http.get("/status").body
    # Then it has the documented keys and the numbers
    assert {"state", "workers", "queues", "plugins"} <= set(body)
    assert body["state"] == "idle"
    assert body["workers"][0]["name"] == "jobs-worker"
    assert body["workers"][0]["processed"] == 3
    assert body["queues"]["jobs"]["depth"] == 0
    assert body["plugins"][0]["name"] == "jobs"


def test_plugins_lists_the_same_objects_as_plugins_list_json(serve) -> None:
    # Given a runtime with one plugin
    runtime, http = serve(JobsPlugin())
    # When /plugins is read
    body = http.get("/plugins").body
    # Then it is exactly PluginInfo.to_dict() for each plugin
    assert body == [info.to_dict() for info in runtime.plugins.infos]
    assert set(body[0]) == {"name", "distribution", "version", "hooks", "status", "error"}


def test_metrics_are_prometheus_text_with_tasks_queues_restarts_state_and_durations(serve) -> None:
    # Given a runtime whose worker handled two tasks, one of which failed for good
    def handler(task) -> None:
        if task.payload["n"] == 1:
            raise ValueError("bad order")

    runtime, http = serve(JobsPlugin(handler, tasks=2, max_attempts=1))
    wait_for(lambda: runtime.registry.queues["jobs"].stats()["dead"] == 1)
    # When metrics are scraped
    answer = http.get("/metrics")
    # Then they are Prometheus text with every family the runtime promises
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = answer.text
    assert 'plba_tasks_processed_total{worker="jobs-worker"} 1.0' in text
    assert 'plba_tasks_failed_total{worker="jobs-worker"} 1.0' in text
    assert 'plba_tasks_dead_lettered_total{worker="jobs-worker"} 1.0' in text
    assert 'plba_tasks_retried_total{worker="jobs-worker"}' in text
    assert 'plba_queue_depth{queue="jobs"} 0.0' in text
    assert 'plba_queue_in_flight{queue="jobs"}' in text
    assert 'plba_queue_dead{queue="jobs"} 1.0' in text
    assert 'plba_queue_paused{queue="jobs"} 0.0' in text
    assert 'plba_worker_restarts_total{worker="jobs-worker"} 0.0' in text
    assert 'plba_runtime_state{state="idle"} 1.0' in text
    assert 'plba_task_duration_seconds_count{worker="jobs-worker"} 2.0' in text
    assert re.search(r'plba_task_duration_seconds_bucket\{le="\+Inf",worker="jobs-worker"\} 2\.0', text)


def test_metrics_can_be_scraped_twice_without_duplicate_registration(serve) -> None:
    # Given two runtimes in one process (no global registry state)
    _, first = serve(JobsPlugin())
    _, second = serve(JobsPlugin())
    # When both are scraped twice, then every scrape succeeds
    assert [h.get("/metrics").status for h in (first, second, first, second)] == [200] * 4


def test_openapi_document_is_served_and_describes_every_endpoint(serve) -> None:
    # Given a running control plane
    runtime, http = serve(JobsPlugin())
    # When /openapi.json is read
    document = http.get("/openapi.json").body
    # Then it is an OpenAPI 3 document naming every route of the app
    assert document["openapi"].startswith("3.")
    # Flask writes path variables as <name>, OpenAPI as {name}.
    routes = {re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
              for rule in runtime.control.app.url_map.iter_rules() if rule.endpoint != "static"}
    assert routes <= set(document["paths"])
    for path, operations in document["paths"].items():
        for operation in operations.values():
            assert operation["responses"], f"{path} has no responses"
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(document)


def test_reads_are_open_by_default_and_need_the_token_with_protect_reads(serve) -> None:
    # Given one runtime with protect_reads off and one with it on
    _, open_http = serve(JobsPlugin(), token=None)
    _, guarded = serve(JobsPlugin(), settings=control_settings(protect_reads=True), token=None)
    # When read without a token
    # Then the open one answers, the guarded one asks for the token on every read
    assert open_http.get("/status").status == 200
    for path in ("/status", "/health", "/metrics", "/plugins", "/openapi.json"):
        assert guarded.get(path).status == 401
    assert guarded.get("/status", token="wrong").status == 403
    assert guarded.get("/status", token=TOKEN).status == 200
