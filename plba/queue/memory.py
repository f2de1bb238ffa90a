"""A bounded, thread-safe in-process task queue with leases, delayed retries and a dead-letter list."""

from __future__ import annotations

import collections
import heapq
import itertools
import threading
import time
from collections.abc import Iterable
from typing import Any

from plba.contracts import Task, TaskQueue
from plba.errors import QueueFullError
from plba.tracing.context import inject


class InMemoryTaskQueue(TaskQueue):
    """Tasks for workers in this process; `maxsize=0` means unbounded."""

    def __init__(self, maxsize: int = 10_000, publish_timeout: float = 5.0, name: str = "memory") -> None:
        self.name = name
        self.maxsize = maxsize
        self.publish_timeout = publish_timeout
        self._ready: collections.deque[Task] = collections.deque()
        self._delayed: list[tuple[float, int, Task]] = []
        self._in_flight: dict[str, Task] = {}
        self._dead: list[Task] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._acked = 0
        self._published = 0
        self._wakeups = 0

    def publish(self, task: Task, timeout: float | None = None) -> None:
        """Add a task, waiting up to `timeout` (default `publish_timeout`) while the queue is full."""
        inject(task.metadata)
        deadline = time.monotonic() + (self.publish_timeout if timeout is None else timeout)
        with self._not_full:
            while self.maxsize and self._backlog() >= self.maxsize:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise QueueFullError(
                        f"queue {self.name!r} is full ({self.maxsize} tasks) and stayed full for the publish timeout"
                    )
                self._not_full.wait(remaining)
            self._ready.append(task)
            self._published += 1
            self._not_empty.notify()

    def consume(self, timeout: float | None = None) -> Task | None:
        """Lease the next visible task, counting the attempt; None after `timeout` with nothing."""
        leased = self.consume_many(1, timeout)
        return leased[0] if leased else None

    def consume_many(self, max_count: int, timeout: float | None = None) -> list[Task]:
        """Lease up to `max_count` visible tasks in one go, waiting up to `timeout` for the first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._not_empty:
            wakeups = self._wakeups
            while True:
                if self._delayed:
                    self._promote_due()
                if self._ready:
                    leased = []
                    for _ in range(min(max_count, len(self._ready))):
                        task = self._ready.popleft()
                        metadata = task.metadata
                        metadata["attempts"] = metadata.get("attempts", 0) + 1
                        self._in_flight[task.id] = task
                        leased.append(task)
                    return leased
                wait = self._wait_time(deadline)
                if (wait is not None and wait <= 0) or wakeups != self._wakeups:
                    return []
                self._not_empty.wait(wait)

    def ack(self, task: Task) -> None:
        """Forget a leased task: it is done."""
        self.ack_many((task,))

    def ack_many(self, tasks: Iterable[Task]) -> None:
        """Forget several leased tasks at once."""
        with self._lock:
            for task in tasks:
                if self._in_flight.pop(task.id, None) is not None:
                    self._acked += 1
            self._not_full.notify_all()

    def nack(self, task: Task, retry_delay: float | None = None) -> None:
        """Return a leased task, visible again at once or after `retry_delay` seconds."""
        with self._lock:
            self._in_flight.pop(task.id, None)
            if retry_delay:
                heapq.heappush(self._delayed, (time.monotonic() + retry_delay, next(self._order), task))
            else:
                self._ready.append(task)
            self._not_empty.notify()

    def release(self, task: Task) -> None:
        """Return a leased task that never ran to the front of the queue, uncounting its attempt."""
        with self._lock:
            self._in_flight.pop(task.id, None)
            task.metadata["attempts"] = max(task.attempts - 1, 0)
            self._ready.appendleft(task)
            self._not_empty.notify()

    def dead_letter(self, task: Task, error: str) -> None:
        """Move a leased task to the dead-letter list with its error."""
        with self._lock:
            self._in_flight.pop(task.id, None)
            task.metadata["error"] = error
            self._dead.append(task)
            self._not_full.notify_all()

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` until nothing is ready, delayed or in flight; True when empty."""
        deadline = time.monotonic() + timeout
        with self._not_full:
            while self._backlog():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._not_full.wait(remaining)
            return True

    def interrupt(self) -> None:
        """Wake every blocked consumer; each returns None."""
        with self._lock:
            self._wakeups += 1
            self._not_empty.notify_all()

    def dead_tasks(self) -> list[Task]:
        """A copy of the dead-lettered tasks, oldest first."""
        with self._lock:
            return list(self._dead)

    def stats(self) -> dict[str, Any]:
        """Depth (ready now), in flight, delayed and dead counts, plus totals."""
        with self._lock:
            return {
                "backend": "memory",
                "depth": len(self._ready),
                "in_flight": len(self._in_flight),
                "delayed": len(self._delayed),
                "dead": len(self._dead),
                "published": self._published,
                "acked": self._acked,
            }

    def _backlog(self) -> int:
        return len(self._ready) + len(self._delayed) + len(self._in_flight)

    def _promote_due(self) -> None:
        now = time.monotonic()
        while self._delayed and self._delayed[0][0] <= now:
            self._ready.append(heapq.heappop(self._delayed)[2])

    def _wait_time(self, deadline: float | None) -> float | None:
        """How long to sleep: until the deadline or the next delayed task, whichever is first."""
        waits = []
        if deadline is not None:
            waits.append(deadline - time.monotonic())
        if self._delayed:
            waits.append(self._delayed[0][0] - time.monotonic())
        return min(waits) if waits else None
