"""Task queues: in memory for one process, Redis for many."""

from typing import TYPE_CHECKING, Any

from plba.queue.factory import build_queue
from plba.queue.memory import InMemoryTaskQueue

if TYPE_CHECKING:
    from plba.queue.redis import RedisTaskQueue

__all__ = ["InMemoryTaskQueue", "RedisTaskQueue", "build_queue"]


def __getattr__(name: str) -> Any:
    # redis-py is imported only by those who use the Redis backend.
    if name == "RedisTaskQueue":
        from plba.queue.redis import RedisTaskQueue

        return RedisTaskQueue
    raise AttributeError(name)
