"""Fixtures for the Redis queue tests: one throwaway redis-server per session, a fresh queue per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from plba.queue.redis import RedisTaskQueue
from tests.redis.server import RedisServer


def _require_redis_server() -> None:
    if RedisServer.executable() is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}; CI must run the Redis tests")
        pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A redis-server on a free loopback port, without persistence, for the whole session."""
    _require_redis_server()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own that keeps its data across a restart on the same port."""
    _require_redis_server()
    server = RedisServer(data_dir=tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own, without persistence, that the test may stop and start."""
    _require_redis_server()
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_queue(redis_server: RedisServer) -> Iterator[Callable[..., RedisTaskQueue]]:
    """Builds queues on the session server, all named after this test unless told; closes them afterwards."""
    name = f"test-{uuid.uuid4().hex[:8]}"
    made: list[RedisTaskQueue] = []

    def make(queue_name: str = name, url: str = redis_server.url, **options) -> RedisTaskQueue:
        queue = RedisTaskQueue(queue_name, url, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()
