"""The Redis queue passes the whole TaskQueue contract (`plba.testing.QueueContract`) on a real redis-server."""

from __future__ import annotations

from typing import Any

import pytest

from plba.testing import QueueContract
from tests.redis.server import RedisServer


class TestRedisQueueContract(QueueContract):
    """RedisTaskQueue, opened through the `redis` backend entry point on the session's redis-server."""

    @pytest.fixture
    def queue_table(self, redis_server: RedisServer) -> dict[str, Any]:
        """The redis backend on the throwaway server."""
        return {"backend": "redis", "url": redis_server.url}
