"""A bounded, thread-safe in-process task queue with leases, delayed retries and a dead-letter list."""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import operator
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from plba.backoff import Backoff
from plba.contracts import (
    DEFAULT_DEAD_MAX,
    DeadPage,
    DeadTask,
    RequeueResult,
    Task,
    TaskQueue,
    check_limit,
    check_purge,
    requested_ids,
    reset_for_requeue,
)
from plba.errors import QueueFullError
from plba.tracing.context import inject

logger = logging.getLogger("plba.queue.memory")

_task_id = operator.attrgetter("id")


class InMemoryTaskQueue(TaskQueue):
    """Tasks for workers in this process; `maxsize=0` means unbounded, `dead_max=0` keeps every dead letter."""

    def __init__(self, maxsize: int = 10_000, publish_timeout: float = 5.0, name: str = "memory", *,
                 max_attempts: int | None = None, retry_backoff: Backoff | None = None,
                 dead_max: int = DEFAULT_DEAD_MAX) -> None:
        self.name = name
        self.maxsize = maxsize
        self.publish_timeout = publish_timeout
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        self.dead_max = dead_max
        self._ready: collections.deque[Task] = collections.deque()
        self._delayed: list[tuple[float, int, Task]] = []
        self._in_flight: dict[str, Task] = {}
        # Dead letters by a sequence number, oldest first: the number is the paging cursor, and two
        # dead tasks that share an id are both kept.
        self._dead: dict[int, Task] = {}
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        # Apart from _not_full so that draining waiters wake once, when empty, not at every ack.
        self._empty = threading.Condition(self._lock)
        self._acked = 0
        self._published = 0
        self._wakeups = 0
        self._paused = False

    @classmethod
    def from_settings(cls, name: str, table: Mapping[str, Any]) -> InMemoryTaskQueue:
        """The queue a `[platform.queues.<name>]` table with `backend = "memory"` (or none) describes."""
        retry_backoff = None
        if "retry_delay" in table or "retry_delay_max" in table:
            retry_backoff = Backoff(base=float(table.get("retry_delay", 1.0)),
                                    cap=float(table.get("retry_delay_max", 300.0)))
        return cls(
            maxsize=int(table.get("maxsize", 10_000)),
            publish_timeout=float(table.get("publish_timeout", 5.0)),
            name=name,
            max_attempts=int(table["max_attempts"]) if "max_attempts" in table else None,
            retry_backoff=retry_backoff,
            dead_max=int(table.get("dead_max", DEFAULT_DEAD_MAX)),
        )

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
        with self._lock:
            wakeups = self._wakeups
            while True:
                if self._delayed:
                    self._promote_due()
                if self._ready and not self._paused:
                    # Moved in C calls only: the interpreter never hands the GIL to another thread
                    # in the middle, so no consumer ever waits for this lock behind a descheduled one.
                    ready = self._ready
                    leased = list(map(collections.deque.popleft, itertools.repeat(ready, min(max_count, len(ready)))))
                    self._in_flight.update(zip(map(_task_id, leased), leased, strict=True))
                    break
                wait = self._wait_time(deadline)
                if (wait is not None and wait <= 0) or wakeups != self._wakeups:
                    return []
                self._not_empty.wait(wait)
        for task in leased:  # these are this consumer's alone now
            metadata = task.metadata
            metadata["attempts"] = metadata.get("attempts", 0) + 1
        return leased

    def ack(self, task: Task) -> None:
        """Forget a leased task: it is done."""
        self.ack_many((task,))

    def ack_many(self, tasks: Iterable[Task]) -> None:
        """Forget several leased tasks at once."""
        ids = [task.id for task in tasks]
        with self._lock:
            forgotten = list(map(self._in_flight.pop, ids, itertools.repeat(None, len(ids))))  # C calls only
            self._acked += len(forgotten) - forgotten.count(None)
            self._left_backlog()

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
        """Move a leased task to the dead-letter list with its error; beyond `dead_max` the oldest is dropped."""
        with self._lock:
            self._in_flight.pop(task.id, None)
            task.metadata["error"] = error
            task.metadata["dead_lettered_at"] = time.time()
            self._dead[next(self._order)] = task
            while self.dead_max and len(self._dead) > self.dead_max:
                oldest = self._dead.pop(next(iter(self._dead)))
                logger.warning("queue %s: more than %d dead letters; dropped the oldest, task %s (%s)",
                               self.name, self.dead_max, oldest.id, oldest.name)
            self._left_backlog()

    def wait_empty(self, timeout: float) -> bool:
        """Wait up to `timeout` until nothing is ready, delayed or in flight; True when empty.

        A paused queue is not drained, so it answers at once.
        """
        deadline = time.monotonic() + timeout
        with self._empty:
            while self._backlog():
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._paused:
                    return False
                self._empty.wait(remaining)
            return True

    def interrupt(self) -> None:
        """Wake every blocked consumer; each returns None."""
        with self._lock:
            self._wakeups += 1
            self._not_empty.notify_all()

    def stats(self) -> dict[str, Any]:
        """Depth (ready now), in flight, delayed and dead counts, whether paused, plus totals."""
        with self._lock:
            return {
                "backend": "memory",
                "depth": len(self._ready),
                "in_flight": len(self._in_flight),
                "delayed": len(self._delayed),
                "dead": len(self._dead),
                "paused": self._paused,
                "published": self._published,
                "acked": self._acked,
            }

    # -- operating: dead letters and controls -----------------------------------------------

    def list_dead(self, limit: int = 100, cursor: str | None = None) -> DeadPage:
        """Up to `limit` dead letters, oldest first, after `cursor`."""
        check_limit(limit)
        after = self._cursor_position(cursor)
        with self._lock:
            page = [(seq, task) for seq, task in self._dead.items() if seq > after][:limit + 1]
        more = len(page) > limit
        page = page[:limit]
        return DeadPage([DeadTask.from_task(task) for _, task in page], str(page[-1][0]) if more else None)

    def requeue(self, ids: Iterable[str]) -> RequeueResult:
        """Move the dead tasks with these ids back to the ready tasks, attempts reset."""
        wanted = requested_ids(ids)
        lookup = set(wanted)
        with self._lock:
            moved = self._move_back([seq for seq, task in self._dead.items() if task.id in lookup])
        found = {task.id for task in moved}
        return RequeueResult(len(moved), [task_id for task_id in wanted if task_id not in found])

    def requeue_all(self) -> RequeueResult:
        """Move every dead task back to the ready tasks, attempts reset."""
        with self._lock:
            return RequeueResult(len(self._move_back(list(self._dead))))

    def purge(self, what: Literal["dead", "ready"]) -> int:
        """Delete every dead or every ready task; returns how many."""
        check_purge(what)
        with self._lock:
            store = self._dead if what == "dead" else self._ready
            removed = len(store)
            store.clear()
            self._left_backlog()
        return removed

    def pause(self) -> None:
        """Stop consumers from leasing until `resume`; they wait without spinning."""
        with self._lock:
            self._paused = True
            self._empty.notify_all()  # a paused queue is not drained: wait_empty answers now

    def resume(self) -> None:
        """Let consumers lease again, waking those that wait."""
        with self._lock:
            self._paused = False
            self._not_empty.notify_all()

    def is_paused(self) -> bool:
        """Whether the queue is paused."""
        return self._paused

    def _move_back(self, seqs: list[int]) -> list[Task]:
        """Move these dead letters to the ready tasks; the caller holds the lock, so the move is atomic."""
        moved = [reset_for_requeue(self._dead.pop(seq)) for seq in seqs]
        # Past maxsize if need be: these tasks were accepted once and must not be lost half-way.
        self._ready.extend(moved)
        self._not_empty.notify_all()
        return moved

    @staticmethod
    def _cursor_position(cursor: str | None) -> int:
        if cursor is None:
            return -1
        try:
            return int(cursor)
        except ValueError:
            raise ValueError(f"not a dead-letter cursor of this queue: {cursor!r}") from None

    def _left_backlog(self) -> None:
        """Tasks left the backlog (the caller holds the lock): wake publishers, and drain waiters once empty."""
        if self.maxsize:  # unbounded, no publisher ever waits
            self._not_full.notify_all()
        if not self._backlog():
            self._empty.notify_all()

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
