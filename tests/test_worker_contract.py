"""A worker that breaks its contract (wrong reading types, raising readings) is that worker's failure only."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from plba import QueueWorker, Task, create_runtime, hookimpl
from plba.contracts import Worker, WorkerHealth, WorkerState, WorkerStatus
from plba.control.app import create_app
from tests.helpers import wait_for
from tests.test_supervisor import CrashingWorker


class Misreporting(Worker):
    """A worker that runs fine but whose `status()` and `health()` return what `readings` says."""

    def __init__(self, name: str, status: Any, health: Any) -> None:
        self.name = name
        self._status, self._health = status, health
        self.starts = 0

    def start(self) -> None:
        self.starts += 1

    def stop(self, force: bool = False) -> None:
        pass

    def status(self) -> Any:
        if isinstance(self._status, Exception):
            raise self._status
        return self._status

    def health(self) -> Any:
        if isinstance(self._health, Exception):
            raise self._health
        return self._health


class Plugin:
    """A misreporting worker, then a worker that crashes once, then a QueueWorker for the `jobs` queue."""

    name = "contract"

    def __init__(self, bad: Worker) -> None:
        self.bad = bad
        self.crasher = CrashingWorker("crasher", crashes=1)
        self.handled: list[int] = []
        self.lock = threading.Lock()
        self.queue: Any = None

    def handle(self, task: Task) -> None:
        with self.lock:
            self.handled.append(task.payload)

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        registry.add_worker(self.bad)
        registry.add_worker(self.crasher)
        self.queue = registry.queue("jobs")
        registry.add_worker(QueueWorker("good", self.queue, self.handle, poll_timeout=0.05))


SETTINGS = {"platform": {"tracing": {"transport": "noop"}, "shutdown_timeout": 5,
                         "supervisor": {"restart_backoff": 0.01}}}


@pytest.mark.parametrize(("status", "health", "expected"), [
    ({"state": "idle"}, WorkerHealth("ok"), "worker 'bad'.status() returned dict, expected WorkerStatus"),
    (None, WorkerHealth("ok"), "worker 'bad'.status() returned None, expected WorkerStatus"),
    (WorkerStatus("idle"), {"status": "ok"}, "worker 'bad'.health() returned dict, expected WorkerHealth"),
    (WorkerStatus("idle"), RuntimeError("sensor gone"), "worker 'bad'.health() raised RuntimeError: sensor gone"),
])
def test_a_worker_with_a_broken_reading_is_reported_failed_and_the_others_are_supervised(
        status: Any, health: Any, expected: str) -> None:
    # Given a runtime with a worker whose readings break the contract, next to a working one
    bad = Misreporting("bad", status, health)
    plugin = Plugin(bad)
    runtime = create_runtime(plugin, enable_http_control=False, settings=SETTINGS)
    with runtime:
        # When the supervisor goes round (the worker after the bad one crashed at its start) and work arrives
        wait_for(lambda: plugin.crasher.state == WorkerState.IDLE, message="the crashed worker restarted")
        for n in range(3):
            plugin.queue.publish(Task("job", n))
        wait_for(lambda: len(plugin.handled) == 3, message="three jobs handled")
        # Then the bad worker is unhealthy naming what it returned, and the others are fine
        assert runtime.supervisor.restarts()["crasher"] == 1
        components = runtime.health()["components"]
        assert components["bad"] == {"status": "unhealthy", "detail": expected, "critical": True}
        assert components["good"]["status"] == "ok"
        statuses = {s["name"]: s for s in runtime.status()["workers"]}
        assert statuses["good"]["processed"] == 3
        if "status()" in expected:
            assert statuses["bad"]["state"] == "failed" and statuses["bad"]["last_error"] == expected
        # And it is not restarted: a restart cannot mend a reading
        assert bad.starts == 1
    # And the stop completes
    assert runtime.state == "stopped"
    assert runtime.last_stop.processed == 3


def test_through_the_control_plane_status_answers_200_and_health_names_the_worker() -> None:
    # Given a running runtime whose worker's status() returns a dict and health() returns None
    plugin = Plugin(Misreporting("bad", {"state": "idle"}, None))
    runtime = create_runtime(plugin, enable_http_control=False, settings=SETTINGS)
    client = create_app(runtime).test_client()
    with runtime:
        # When /status and /health are read a few supervisor rounds later
        wait_for(lambda: plugin.crasher.state == WorkerState.IDLE, message="the supervisor went round")
        status = client.get("/status")
        health = client.get("/health")
        # Then /status answers 200 with the worker failed, /health 503 naming it
        assert status.status_code == 200
        bad = next(w for w in status.get_json()["workers"] if w["name"] == "bad")
        assert bad["state"] == WorkerState.FAILED.value
        assert bad["last_error"] == "worker 'bad'.status() returned dict, expected WorkerStatus"
        assert health.status_code == 503
        assert health.get_json()["components"]["bad"]["detail"] == \
            "worker 'bad'.health() returned None, expected WorkerHealth"
        assert client.get("/health/ready").status_code == 503
    # And the stop summary says whose counts it could not read
    assert "could not read the counts of worker 'bad'" in str(runtime.last_stop)
    assert runtime.state == "stopped"
