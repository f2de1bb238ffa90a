"""Helpers for the Redis queue tests."""

from __future__ import annotations

from plba.queue.redis import RedisTaskQueue


def crash(queue: RedisTaskQueue) -> None:
    """Make `queue` behave like a consumer whose process died: it stops renewing leases and sends nothing more."""
    queue._keeper.stop(timeout=None)
    queue._leases.clear()
    queue._buffer.clear()
    queue._acks.clear()
