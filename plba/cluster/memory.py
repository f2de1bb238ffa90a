"""The cluster store of a lone process: the same guarantees as the shared ones, within one process."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Any

from plba.cluster import ClusterStore


class InProcessClusterStore(ClusterStore):
    """Claims, firings, heartbeats and stop requests in memory: the store without `platform.cluster.url`."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self._lock = threading.Lock()
        self._claims: dict[str, float] = {}
        self._last: dict[str, datetime] = {}
        # Instance id -> (expiry on the monotonic clock, record); and pending stop requests.
        self._beats: dict[str, tuple[float, dict[str, Any]]] = {}
        self._stops: dict[str, tuple[float, dict[str, Any]]] = {}

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

    def renew(self, key: str, ttl: float) -> bool:
        """Push the claim's expiry to `ttl` seconds from now, unless it already ran out."""
        now = time.monotonic()
        with self._lock:
            if self._claims.get(key, 0.0) <= now:
                return False
            self._claims[key] = now + ttl
            return True

    def release(self, key: str) -> None:
        """Drop the claim."""
        with self._lock:
            self._claims.pop(key, None)

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

    def beat(self, record: dict[str, Any], ttl: float) -> None:
        """Keep `record` for `ttl` seconds."""
        with self._lock:
            self._beats[record["id"]] = (time.monotonic() + ttl, dict(record))

    def instances(self) -> list[dict[str, Any]]:
        """Records whose time has not run out."""
        now = time.monotonic()
        with self._lock:
            self._beats = {key: entry for key, entry in self._beats.items() if entry[0] > now}
            return [dict(record) for _, record in self._beats.values()]

    def leave(self, instance_id: str) -> None:
        """Forget the instance's heartbeat and stop request."""
        with self._lock:
            self._beats.pop(instance_id, None)
            self._stops.pop(instance_id, None)

    def request_stop(self, instance_id: str, request: dict[str, Any], ttl: float) -> bool:
        """Leave the request when the instance is live."""
        if instance_id not in {record["id"] for record in self.instances()}:
            return False
        with self._lock:
            self._stops[instance_id] = (time.monotonic() + ttl, dict(request))
        return True

    def take_stop_request(self, instance_id: str) -> dict[str, Any] | None:
        """The pending request, removed, unless it expired."""
        with self._lock:
            until, request = self._stops.pop(instance_id, (0.0, None))
        return request if until > time.monotonic() else None
