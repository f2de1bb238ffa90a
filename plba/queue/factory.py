"""Build the queue a plugin asks for by name from `[platform.queues.<name>]`."""

from __future__ import annotations

from typing import Any

from plba.contracts import TaskQueue
from plba.errors import ConfigError
from plba.worker import DEFAULT_MAX_ATTEMPTS

BACKENDS = ("memory", "redis")


def build_queue(name: str, settings: Any) -> TaskQueue:
    """The queue named `name` as the settings describe it; in memory when its table is absent."""
    table = settings.get(f"platform.queues.{name}") or {}
    backend = str(table.get("backend", "memory")).lower()
    if backend == "memory":
        from plba.queue.memory import InMemoryTaskQueue

        queue = InMemoryTaskQueue(
            maxsize=int(table.get("maxsize", 10_000)),
            publish_timeout=float(table.get("publish_timeout", 5.0)),
            name=name,
        )
        # QueueWorker reads the retry policy from its queue, whatever the backend.
        queue.max_attempts = int(table.get("max_attempts", DEFAULT_MAX_ATTEMPTS))
        return queue
    if backend == "redis":
        from plba.queue.redis import RedisTaskQueue

        return RedisTaskQueue.from_settings(name, table)
    choices = ", ".join(BACKENDS)
    raise ConfigError(f"platform.queues.{name}.backend: unknown backend {backend!r} (choose one of {choices})")
