"""The Redis cluster store passes the cluster store contract on a throwaway redis-server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from plba.cluster.redis import RedisClusterStore
from tests.cluster.contract import ClusterStoreContract, MakeStore


class TestRedisClusterStore(ClusterStoreContract):
    """Stores on the session's server under a key prefix of the test's own."""

    @pytest.fixture
    def make_store(self, redis_server) -> Iterator[MakeStore]:
        prefix = f"test-{uuid.uuid4().hex[:8]}"
        made: list[RedisClusterStore] = []

        def make(owner: str) -> RedisClusterStore:
            made.append(RedisClusterStore(redis_server.url, owner, key_prefix=prefix))
            return made[-1]

        yield make
        for store in made:
            store.close()
