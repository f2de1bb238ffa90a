"""PostgreSQL fixtures every test directory may use: one throwaway cluster per session, a fresh database per test.

Registered from `tests/conftest.py`, so the users and cluster tests run against PostgreSQL as well
as the queue tests. psycopg is imported only once a test asks for PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.postgres.server import PostgresServer


def _require_postgres() -> None:
    reason = None
    try:
        import psycopg_pool  # noqa: F401
    except ImportError:
        reason = "the postgres extra is not installed (pip install 'plba[postgres]')"
    else:
        from tests.postgres.server import server_bin

        if server_bin() is None:
            reason = "PostgreSQL server binaries are not installed (apt-get install postgresql)"
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
    pytest.skip(reason)


def _new_server() -> PostgresServer:
    _require_postgres()
    from tests.postgres.server import PostgresServer

    return PostgresServer().start()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster on a free loopback port, for the whole session."""
    server = _new_server()
    yield server
    server.remove()


@pytest.fixture
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL cluster of this test's own, which the test may stop, start and restart."""
    server = _new_server()
    yield server
    server.remove()


@pytest.fixture
def database_url(postgres_server: PostgresServer) -> Iterator[str]:
    """The URL of a database made for this test alone, dropped afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)
