"""Small counters for readings: a fixed-bucket histogram workers update on the hot path, and per-minute counts."""

from __future__ import annotations

import bisect
import threading
import time

MINUTES = 60

DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Histogram:
    """Bucket counts plus sum and count, as Prometheus exposes them.

    Not locked: the owner serialises `observe` (QueueWorker calls it under its own lock), and a
    snapshot taken meanwhile is at worst one observation behind.
    """

    def __init__(self, buckets: tuple[float, ...] = DURATION_BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0

    def observe(self, value: float) -> None:
        """Record one value."""
        self._counts[bisect.bisect_left(self.buckets, value)] += 1
        self._sum += value

    def snapshot(self) -> dict:
        """Cumulative counts per upper bound (`+Inf` last), the sum and the count."""
        counts, total = list(self._counts), self._sum
        cumulative, running = [], 0
        for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return {"buckets": cumulative, "sum": total, "count": running}


class MinuteCounts:
    """Tasks processed and failed per wall-clock minute over the last `minutes`, in a fixed ring.

    The supervisor adds what its workers counted since its previous look on every tick, so a
    minute nobody watched is still counted, and the hot path does not pay for it.
    """

    def __init__(self, minutes: int = MINUTES) -> None:
        self.minutes = minutes
        # One slot per minute, reused each hour: [minute number, processed, failed].
        self._slots = [[-1, 0, 0] for _ in range(minutes)]
        self._lock = threading.Lock()

    def add(self, processed: int, failed: int, now: float | None = None) -> None:
        """Count `processed` and `failed` tasks to the minute of `now` (default: the current time)."""
        if not processed and not failed:
            return
        minute = int((time.time() if now is None else now) // 60)
        with self._lock:
            slot = self._slots[minute % self.minutes]
            if slot[0] != minute:
                slot[:] = [minute, 0, 0]
            slot[1] += processed
            slot[2] += failed

    def series(self, now: float | None = None) -> list[dict[str, int]]:
        """Each of the last `minutes` minutes, oldest first: its start (epoch seconds) and counts."""
        current = int((time.time() if now is None else now) // 60)
        result = []
        with self._lock:
            for minute in range(current - self.minutes + 1, current + 1):
                number, processed, failed = self._slots[minute % self.minutes]
                counted = number == minute
                result.append({"minute": minute * 60, "processed": processed if counted else 0,
                               "failed": failed if counted else 0})
        return result
