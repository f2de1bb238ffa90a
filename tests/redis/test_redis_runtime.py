"""A plugin's queue moves to Redis by settings alone, inside a real runtime."""

from __future__ import annotations

import signal
import threading

from plba import ApplicationModule, QueueWorker, Task, create_runtime
from plba.queue.redis import RedisTaskQueue
from plba.testing import drain
from tests.helpers import PlbaProcess, wait_for


class Orders(ApplicationModule):
    """Publishes three orders to the `jobs` queue and handles them with two threads."""

    name = "orders"

    def __init__(self) -> None:
        self.handled: list[int] = []
        self.lock = threading.Lock()
        self.queue = None

    def handle(self, task: Task) -> None:
        with self.lock:
            self.handled.append(task.payload)

    def register(self, registry) -> None:
        self.queue = registry.queue("jobs")
        for n in range(3):
            self.queue.publish(Task("order", n))
        registry.add_worker(QueueWorker("orders", self.queue, self.handle, registry.services.get("traces"),
                                        concurrency=2))


def test_given_a_redis_table_for_a_queue_then_the_plugin_runs_on_redis_unchanged(redis_server):
    """Given `[platform.queues.jobs]` with backend redis, when the runtime runs, then its tasks go through Redis."""
    plugin = Orders()
    table = {"backend": "redis", "url": redis_server.url, "key_prefix": "runtime-test"}
    runtime = create_runtime(plugin, enable_http_control=False, settings={"platform": {"queues": {"jobs": table}}})
    with runtime:
        drain(runtime, timeout=20)
        assert isinstance(plugin.queue, RedisTaskQueue)
        assert runtime.status()["queues"]["jobs"]["pending"] == 0
        assert runtime.status()["queues"]["jobs"]["backend"] == "redis"
    assert sorted(plugin.handled) == [0, 1, 2]


def test_a_stop_during_a_redis_outage_completes_and_names_what_it_could_not_read(own_redis):
    """Given a runtime on Redis whose server went away, when it stops, then it stops and can start again."""
    plugin = Orders()
    table = {"backend": "redis", "url": own_redis.url, "key_prefix": "outage-test"}
    runtime = create_runtime(plugin, enable_http_control=False, settings={"platform": {
        "queues": {"jobs": table}, "tracing": {"transport": "noop"}, "shutdown_timeout": 5}})
    try:
        runtime.start()
        wait_for(lambda: len(plugin.handled) == 3, timeout=20, message="three orders handled")
        # When the server stops and then the runtime stops
        own_redis.stop()
        summary = runtime.stop()
        # Then the stop completed, and its summary counts the run and names the queue it could not read
        assert runtime.state == "stopped"
        assert summary.processed == 3
        assert any(line.startswith("queue 'jobs' (") for line in summary.unreadable), summary.unreadable
        assert "could not read queue 'jobs'" in str(summary)
        # And once the server is back, the same runtime starts and works again
        own_redis.start()
        runtime.start()
        plugin.queue.publish(Task("order", 3))
        wait_for(lambda: 3 in plugin.handled, timeout=20, message="the order sent after the restart")
    finally:
        runtime.close()
    assert runtime.state == "stopped"


def test_plba_run_stopped_during_a_redis_outage_exits_0_with_its_summary(own_redis, project, env, running):
    """Given `plba run` on a Redis queue, when Redis stops and then SIGINT arrives, then it exits 0 with a summary."""
    env = {**env, "PLBA_PLATFORM__QUEUES__ACME__BACKEND": "redis", "PLBA_PLATFORM__QUEUES__ACME__URL": own_redis.url}
    process = PlbaProcess("run", "--plugin", "acme", cwd=project, env=env)
    running.append(process)
    process.wait_for_output("handled {'n': 2}")
    own_redis.stop()
    process.signal(signal.SIGINT)
    assert process.wait() == 0, process.output()
    output = process.output()
    assert "stopped: 3 task(s) processed and 0 failed during the run" in output
    assert "could not read queue 'acme' (" in output
    assert "Traceback" not in output
