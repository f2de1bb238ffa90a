"""Tasks processed per minute over the last hour, and the small SVG bar chart the overview shows."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

from markupsafe import Markup

MINUTES = 60


class Throughput:
    """Per-minute counts derived from the workers' `processed` counters, sampled whenever they are read.

    A minute in which nobody looked shows as part of the next sampled minute's count.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last_total: int | None = None
        self._minutes: OrderedDict[int, int] = OrderedDict()

    def sample(self, processed_total: int, now: float | None = None) -> None:
        """Record the workers' processed total at `now`; the growth since the last sample counts to this minute."""
        minute = int((now if now is not None else time.time()) // 60)
        with self._lock:
            grown = 0 if self._last_total is None else max(processed_total - self._last_total, 0)
            self._last_total = processed_total
            self._minutes[minute] = self._minutes.get(minute, 0) + grown
            while self._minutes and next(iter(self._minutes)) <= minute - MINUTES:
                self._minutes.popitem(last=False)

    def series(self, now: float | None = None) -> list[int]:
        """The last hour's counts, oldest minute first, this minute last."""
        minute = int((now if now is not None else time.time()) // 60)
        with self._lock:
            return [self._minutes.get(m, 0) for m in range(minute - MINUTES + 1, minute + 1)]


def bar_chart(series: list[int], width: int = 360, height: int = 60) -> Markup:
    """An inline SVG bar per minute, scaled to the busiest one; numbers only, so nothing needs escaping."""
    peak = max(series) or 1
    step = width / len(series)
    bars = "".join(
        f'<rect x="{i * step:.1f}" y="{height - count / peak * height:.1f}" width="{max(step - 1, 1):.1f}" '
        f'height="{count / peak * height:.1f}"><title>{count}</title></rect>'
        for i, count in enumerate(series))
    return Markup(f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
                  f'role="img" aria-label="tasks per minute, last hour (peak {peak})">{bars}</svg>')
