"""The cluster store of a lone process: the same guarantees as the shared ones, within one process."""

from __future__ import annotations

import threading
import time
from datetime import datetime

from plba.cluster import ClusterStore


class InProcessClusterStore(ClusterStore):
    """Claims and last firings in memory; what a runtime without `platform.cluster.url` uses."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self._lock = threading.Lock()
        self._claims: dict[str, float] = {}
        self._last: dict[str, datetime] = {}

    def claim(self, key: str, ttl: float) -> bool:
        """Take `key` for `ttl` seconds unless someone in this process holds it."""
        now = time.monotonic()
        with self._lock:
            # Expired claims go here, so the dict holds only live ones.
            self._claims = {k: until for k, until in self._claims.items() if until > now}
            if key in self._claims:
                return False
            self._claims[key] = now + ttl
            return True

    def claim_slot(self, schedule: str, slot: datetime, ttl: float) -> bool:
        """Take the slot unless it is no later than the last one fired."""
        with self._lock:
            last = self._last.get(schedule)
            if last is not None and slot <= last:
                return False
            self._last[schedule] = slot
            return True

    def last_fired(self, schedule: str) -> datetime | None:
        """The latest slot claimed in this process."""
        with self._lock:
            return self._last.get(schedule)
