"""Fixtures for the PostgreSQL queue tests (the server and database fixtures are in `tests.postgres.fixtures`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture
def make_queue(database_url: str) -> Iterator[Callable[..., object]]:
    """Builds queues in this test's database, all named after this test unless told; closes them afterwards."""
    from plba.queue.postgres import PostgresTaskQueue

    name = f"test-{uuid.uuid4().hex[:8]}"
    made: list[PostgresTaskQueue] = []

    def make(queue_name: str = name, url: str = database_url, **options) -> PostgresTaskQueue:
        queue = PostgresTaskQueue(queue_name, url, **options)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()
