"""A plugin's queue moves to Redis by settings alone, inside a real runtime."""

from __future__ import annotations

import threading

from plba import ApplicationModule, QueueWorker, Task, create_runtime
from plba.queue.redis import RedisTaskQueue
from tests.helpers import wait_for


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
        wait_for(lambda: len(plugin.handled) == 3, timeout=20, message="three orders handled")
        assert isinstance(plugin.queue, RedisTaskQueue)
        wait_for(lambda: runtime.status()["queues"]["jobs"]["pending"] == 0, message="the acks")
        assert runtime.status()["queues"]["jobs"]["backend"] == "redis"
    assert sorted(plugin.handled) == [0, 1, 2]
