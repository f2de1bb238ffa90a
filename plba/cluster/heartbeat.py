"""The heartbeat: every instance publishes who it is and how it is doing, and picks up stop requests left for it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from plba.cluster import ClusterStore

logger = logging.getLogger("plba.cluster")

# A heartbeat is forgotten after this many intervals without a new one: a dead instance leaves the list then.
TTL_INTERVALS = 3


class Heartbeat:
    """A thread writing `snapshot()` to the store every `interval` seconds, until `stop()`.

    After each beat it takes the stop request left for this instance, if any, and hands it to
    `on_stop_request`. A store that cannot be reached is logged once per outage and retried on
    the next beat; the instance keeps running.
    """

    def __init__(self, store: ClusterStore, interval: float, snapshot: Callable[[], dict[str, Any]],
                 on_stop_request: Callable[[dict[str, Any]], None]) -> None:
        self.store = store
        self.interval = interval
        self.ttl = interval * TTL_INTERVALS
        self.instance_id = store.owner
        self._snapshot = snapshot
        self._on_stop_request = on_stop_request
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def start(self) -> None:
        """Beat once now (so the instance is listed as soon as it runs), then every interval in a thread."""
        if self._thread is not None:
            return
        self.beat()
        self._thread = threading.Thread(target=self._run, name="plba-heartbeat", daemon=True)
        self._thread.start()

    def beat(self) -> None:
        """Publish one heartbeat and act on a pending stop request."""
        try:
            record = {**self._snapshot(), "id": self.instance_id,
                      "last_seen": datetime.fromtimestamp(time.time(), UTC).isoformat()}
            self.store.beat(record, self.ttl)
            request = self.store.take_stop_request(self.instance_id)
        except Exception as exc:  # noqa: BLE001 - an unreachable store must not stop the instance
            if not self._failing:
                logger.warning("heartbeat: cannot reach the cluster store: %s: %s", type(exc).__name__, exc)
            self._failing = True
            return
        if self._failing:
            logger.info("heartbeat: the cluster store answers again")
            self._failing = False
        if request is not None:
            self._on_stop_request(request)

    def stop(self) -> None:
        """End the thread and leave the list at once (a clean stop needs no expiry)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self.interval + 5)
            self._thread = None
        try:
            self.store.leave(self.instance_id)
        except Exception as exc:  # noqa: BLE001 - the heartbeat expires by itself anyway
            logger.warning("heartbeat: could not leave the cluster store: %s: %s", type(exc).__name__, exc)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            self.beat()
