"""Task queues: in memory for one process, Redis for many, any other backend through `plba.queues` entry points."""

from typing import TYPE_CHECKING, Any

from plba.queue.factory import backends, build_queue, open_queue
from plba.queue.memory import InMemoryTaskQueue

if TYPE_CHECKING:
    from plba.queue.redis import RedisTaskQueue

__all__ = ["InMemoryTaskQueue", "RedisTaskQueue", "backends", "build_queue", "open_queue"]


def __getattr__(name: str) -> Any:
    # redis-py is imported only by those who use the Redis backend.
    if name == "RedisTaskQueue":
        from plba.queue.redis import RedisTaskQueue

        return RedisTaskQueue
    raise AttributeError(name)
