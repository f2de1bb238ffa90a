"""Fixtures for the PostgreSQL queue tests: one throwaway cluster per session, a fresh database per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator

import pytest

from tests.postgres.server import PostgresServer, server_bin


def _require_postgres() -> None:
    reason = None
    if server_bin() is None:
        reason = "PostgreSQL server binaries are not installed (apt-get install postgresql)"
    else:
        try:
            import psycopg_pool  # noqa: F401
        except ImportError:
            reason = "the postgres extra is not installed (pip install 'plba[postgres]')"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on a free loopback port, for the whole session."""
    _require_postgres()
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, which the test may stop, start and restart."""
    _require_postgres()
    server = PostgresServer().start()
    yield server
    server.remove()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a database made for this test alone, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


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
