"""The PostgreSQL queue passes the whole TaskQueue contract (`plba.testing.QueueContract`) on a real server."""

from __future__ import annotations

from typing import Any

import pytest

from plba.testing import QueueContract


class TestPostgresQueueContract(QueueContract):
    """PostgresTaskQueue, opened through the `postgres` backend entry point, in a database of this test's own."""

    @pytest.fixture
    def queue_table(self, database_url: str) -> dict[str, Any]:
        """The postgres backend on the throwaway cluster."""
        return {"backend": "postgres", "url": database_url}
