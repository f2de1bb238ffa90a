"""A fixed-bucket histogram that workers update on the hot path."""

from __future__ import annotations

import bisect

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
