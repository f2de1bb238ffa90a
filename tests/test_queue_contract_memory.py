"""The in-memory queue passes the whole TaskQueue contract (`plba.testing.QueueContract`)."""

from __future__ import annotations

from typing import Any

import pytest

from plba.testing import QueueContract


class TestInMemoryQueueContract(QueueContract):
    """InMemoryTaskQueue, opened through the `memory` backend entry point."""

    # Its tasks live in this process only: no other process can lease them, so the killed-consumer case is skipped.
    cross_process = False

    @pytest.fixture
    def queue_table(self) -> dict[str, Any]:
        """The memory backend needs nothing but its name."""
        return {"backend": "memory"}
