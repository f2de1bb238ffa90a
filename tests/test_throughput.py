"""The last hour's tasks per minute: the ring that holds them, and a real runtime that fills it."""

from __future__ import annotations

import threading
import time

from plba import QueueWorker, Task, create_runtime, hookimpl
from plba.stats import MINUTES, MinuteCounts
from tests.helpers import wait_for

QUIET = {"platform": {"tracing": {"transport": "noop"}}}
NOON = 1_800_000_000 - 1_800_000_000 % 3600 + 12 * 3600.0


def test_minutes_without_activity_are_zeros_and_the_current_minute_is_last() -> None:
    counts = MinuteCounts()
    counts.add(3, 1, now=NOON + 5)
    counts.add(2, 0, now=NOON + 59)
    counts.add(4, 0, now=NOON + 60 * 10)
    series = counts.series(now=NOON + 60 * 10 + 30)
    assert len(series) == MINUTES
    assert series[-1] == {"minute": int(NOON) + 600, "processed": 4, "failed": 0}
    assert series[-11] == {"minute": int(NOON), "processed": 5, "failed": 1}
    assert [m["minute"] for m in series] == [int(NOON) + 600 - 60 * (MINUTES - 1 - i) for i in range(MINUTES)]
    others = [m for i, m in enumerate(series) if i not in (MINUTES - 1, MINUTES - 11)]
    assert all(m["processed"] == 0 and m["failed"] == 0 for m in others)


def test_a_minute_older_than_the_hour_is_forgotten_even_when_its_slot_is_not_reused() -> None:
    counts = MinuteCounts()
    counts.add(7, 2, now=NOON)
    assert counts.series(now=NOON + 60 * (MINUTES - 1))[0]["processed"] == 7
    assert sum(m["processed"] + m["failed"] for m in counts.series(now=NOON + 60 * MINUTES)) == 0
    counts.add(1, 0, now=NOON + 60 * MINUTES)
    assert [m["processed"] for m in counts.series(now=NOON + 60 * MINUTES)][-1] == 1


class Jobs:
    """One queue `jobs`; a payload with `"fail": true` raises, and dead-letters on its first attempt."""

    name = "jobs"

    def __init__(self) -> None:
        self.queue = None

    @hookimpl
    def register_workers(self, registry) -> None:
        """Add the `jobs` queue and its worker."""
        self.queue = registry.queue("jobs")
        registry.add_worker(QueueWorker("jobs-worker", self.queue, self.handle, max_attempts=1, poll_timeout=0.05))

    @staticmethod
    def handle(task: Task) -> None:
        """Fail when asked to."""
        if task.payload.get("fail"):
            raise ValueError("asked to fail")


def _totals(runtime) -> tuple[int, int]:
    series = runtime.status()["throughput"]
    return sum(m["processed"] for m in series), sum(m["failed"] for m in series)


def test_a_running_runtime_counts_its_tasks_in_the_minute_they_finished_without_anyone_looking() -> None:
    plugin = Jobs()
    runtime = create_runtime(plugin, enable_http_control=False, settings=QUIET)
    with runtime:
        assert _totals(runtime) == (0, 0)
        first_minute = int(time.time() // 60) * 60
        for n in range(5):
            plugin.queue.publish(Task("job", {"n": n, "fail": n == 4}))
        # Nobody reads the status while the tasks run: the supervisor's tick counts them.
        wait_for(lambda: plugin.queue.stats()["dead"] == 1 and runtime.status()["workers"][0]["processed"] == 4,
                 message="4 processed, 1 dead")
        wait_for(lambda: _totals(runtime) == (4, 1), message="the tick to count them")
        last_minute = int(time.time() // 60) * 60
        series = runtime.status()["throughput"]
    assert series[-1]["minute"] >= last_minute
    active = [m for m in series if m["processed"] or m["failed"]]
    # The tasks finished within the test, so in its minute (or the next, when the test spans a minute's end).
    assert active and all(first_minute <= m["minute"] <= last_minute for m in active)
    assert len(series) - len(active) >= MINUTES - 2


def test_a_task_finished_while_draining_is_counted_by_the_stop() -> None:
    plugin = Jobs()
    runtime = create_runtime(plugin, enable_http_control=False, settings=QUIET)
    started = threading.Event()

    def finish_once_stopping(task: Task) -> None:
        started.set()
        wait_for(lambda: runtime.state == "stopping", message="the stop to begin")

    plugin.handle = finish_once_stopping  # type: ignore[method-assign]
    with runtime:
        plugin.queue.publish(Task("job", {}))
        started.wait(10)
        summary = runtime.stop()
    assert summary.finished == 1
    assert _totals(runtime) == (1, 0)
