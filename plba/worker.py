"""QueueWorker: a pool of threads that lease tasks, run the handler, then ack, retry or dead-letter."""

from __future__ import annotations

import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from plba.backoff import Backoff
from plba.contracts import (
    DEFAULT_MAX_ATTEMPTS,
    HealthStatus,
    Task,
    TaskHandler,
    TaskQueue,
    Worker,
    WorkerHealth,
    WorkerState,
    WorkerStatus,
)
from plba.stats import Histogram
from plba.thread_worker import join_threads
from plba.tracing.context import call_in_span, extract
from plba.tracing.service import TraceService

logger = logging.getLogger("plba.worker")

# Handlers faster than this (seconds, smoothed) let threads lease tasks in batches.
QUICK_HANDLER = 0.001
# Each handler time moves the smoothed one by this fraction, and counts for at most SLOW_SAMPLE:
# a GIL switch or a page fault that lands inside one quick handler (several ms) cannot end batching,
# while a handler that is really slow does within a few tasks.
SMOOTHING = 1 / 16
SLOW_SAMPLE = 4 * QUICK_HANDLER


class QueueWorker(Worker):
    """Consumes `queue` with `concurrency` threads and hands each task to `handler`.

    A task is acknowledged only after the handler returned. A handler that raises has the task
    retried with backoff until `max_attempts` (the queue's setting by default), then dead-lettered
    with its error. Attempts are counted by the queue at delivery, so crashes count too. While
    handlers are quick, each thread leases up to `prefetch` tasks at a time to save lock round trips.
    """

    def __init__(
        self,
        name: str,
        queue: TaskQueue,
        handler: TaskHandler | Callable[[Task], Any],
        traces: TraceService | None = None,
        concurrency: int = 1,
        *,
        critical: bool = True,
        max_attempts: int | None = None,
        retry_backoff: Backoff | None = None,
        poll_timeout: float = 1.0,
        prefetch: int = 32,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"worker {name!r}: concurrency must be at least 1, not {concurrency}")
        self.name = name
        self.queue = queue
        self.handler = handler
        # Without a service of its own the worker still resumes the trace a task carries, so its logs
        # have the trace id; the spans themselves go nowhere.
        self.traces = traces or TraceService()
        self.concurrency = concurrency
        self.critical = critical
        self.max_attempts = max_attempts or queue.max_attempts or DEFAULT_MAX_ATTEMPTS
        self.retry_backoff = retry_backoff or queue.retry_backoff or Backoff()
        self.poll_timeout = poll_timeout
        self.prefetch = max(1, prefetch)
        # Start as if handlers were slow: one task a lease until they prove quick.
        self._handler_time = 2 * QUICK_HANDLER
        self._batching = False
        self._leased: dict[int, collections.deque[Task]] = {}
        self.durations = Histogram()
        self._handle = handler.handle if isinstance(handler, TaskHandler) else handler
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state = WorkerState.STOPPED
        self._running: dict[int, tuple[Task, float]] = {}
        self._counts = {"processed": 0, "failed": 0, "retried": 0, "dead_lettered": 0}
        self._last_error: str | None = None
        self._crash: str | None = None
        self._queue_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the consumer threads."""
        self._stopping.clear()
        self._crash = None
        self._state = WorkerState.STARTING
        self._threads = [
            threading.Thread(target=self._consume_loop, name=f"{self.name}-{i}", daemon=True)
            for i in range(self.concurrency)
        ]
        for thread in self._threads:
            thread.start()
        self._state = WorkerState.IDLE

    def stop(self, force: bool = False) -> None:
        """Stop taking tasks; in-flight ones finish (or, with `force`, are given back to the queue)."""
        self._state = WorkerState.STOPPING
        self._stopping.set()
        self.queue.interrupt()
        if force:
            for task in self.abandon():
                logger.warning("worker %s: forced stop requeued task %s (%s)", self.name, task.id, task.name)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads within `timeout`; True when all ended."""
        ended = join_threads(self._threads, timeout)
        if ended and self._state == WorkerState.STOPPING:
            self._state = WorkerState.STOPPED
        return ended

    def abandon(self) -> list[Task]:
        """Give every in-flight task back to the queue and forget it; returns them.

        Tasks leased in a batch but not started yet are released too.
        """
        abandoned = []
        for ident in list(self._running):
            # pop is atomic: either this or the task's own thread (in _settle) owns the task.
            entry = self._running.pop(ident, None)
            if entry is not None:
                abandoned.append(entry[0])
        for task in abandoned:
            with contextlib.suppress(Exception):
                self.queue.nack(task)
        for leased in list(self._leased.values()):
            self._release(leased)
        return abandoned

    # -- readings --------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Tasks the worker runs at once: its `concurrency`."""
        return self.concurrency

    def consumes(self) -> TaskQueue:
        """The queue this worker leases its tasks from."""
        return self.queue

    def status(self) -> WorkerStatus:
        """State (busy while any task is in flight), counters and the last error."""
        in_flight = len(self._running)
        with self._lock:
            counts = dict(self._counts)
        state = self._state
        if self._crash:
            state = WorkerState.FAILED
        elif state == WorkerState.IDLE and in_flight:
            state = WorkerState.BUSY
        return WorkerStatus(state, in_flight, counts["processed"], counts["failed"], self._last_error or self._crash)

    def health(self) -> WorkerHealth:
        """Unhealthy when a thread crashed; degraded (unhealthy if critical) while the queue fails.

        A paused queue is ok, with the pause as the detail: an operator paused it on purpose, so the
        instance stays ready (DESIGN: readiness needs every critical component ok).
        """
        if self._crash:
            return WorkerHealth(HealthStatus.UNHEALTHY, f"consumer thread crashed: {self._crash}")
        if self._queue_error:
            level = HealthStatus.UNHEALTHY if self.critical else HealthStatus.DEGRADED
            return WorkerHealth(level, f"queue unavailable: {self._queue_error}")
        if self._queue_paused():
            return WorkerHealth(HealthStatus.OK, "queue is paused: no task is leased until it is resumed")
        return WorkerHealth(HealthStatus.OK, f"{self.concurrency} thread(s)")

    def _queue_paused(self) -> bool:
        try:
            return self.queue.is_paused()
        except Exception:  # noqa: BLE001 - an unreachable queue shows through the consumer loop's error
            return False

    def metrics(self) -> dict[str, Any]:
        """Counters and the handler duration histogram, for `/metrics`."""
        with self._lock:
            counts = dict(self._counts)
        return {**counts, "durations": self.durations.snapshot()}

    def stuck_for(self) -> float:
        """Seconds the oldest in-flight task has been running; 0 when none is."""
        starts = [started for _, started in list(self._running.values())]
        return time.monotonic() - min(starts) if starts else 0.0

    # -- the loop --------------------------------------------------------------------------

    def _consume_loop(self) -> None:
        ident = threading.get_ident()
        leased: collections.deque[Task] = collections.deque()
        self._leased[ident] = leased
        try:
            while not self._stopping.is_set():
                leased.extend(self._lease())
                batch = _Batch()
                try:
                    while leased and not self._stopping.is_set():
                        try:
                            task = leased.popleft()
                        except IndexError:  # a forced stop emptied the batch under us
                            break
                        self._process(task, ident, batch)
                        if leased and not self._batching:
                            self._release(leased)  # handlers turned slow: others may take these
                finally:
                    self._record(batch)
                # Acks for a batch go in one call; each only after its handler returned.
                if batch.done:
                    self.queue.ack_many(batch.done)
        except Exception as exc:  # noqa: BLE001 - a crashed thread is reported, then restarted
            self._crash = f"{type(exc).__name__}: {exc}"
            logger.exception("worker %s: consumer thread crashed", self.name)
        finally:
            # Tasks leased but never started go back unchanged for another consumer.
            self._release(leased)

    def _lease(self) -> list[Task]:
        try:
            batch = self.queue.consume_many(self.prefetch if self._batching else 1, timeout=self.poll_timeout)
        except Exception as exc:  # noqa: BLE001 - a queue outage degrades health; the loop waits and retries
            if self._queue_error is None:
                logger.error("worker %s: queue unavailable: %s", self.name, exc)
            self._queue_error = f"{type(exc).__name__}: {exc}"
            self._stopping.wait(self.poll_timeout)
            return []
        if self._queue_error is not None:
            logger.info("worker %s: queue available again", self.name)
            self._queue_error = None
        return batch

    def _release(self, leased: collections.deque[Task]) -> None:
        while leased:
            try:
                task = leased.popleft()
            except IndexError:
                return
            with contextlib.suppress(Exception):
                self.queue.release(task)

    def _process(self, task: Task, ident: int, batch: _Batch) -> None:
        """Run one task; a success joins `batch.done` for the caller to acknowledge, a failure is settled now."""
        attempt = task.attempts
        if attempt > self.max_attempts:
            # Delivered more often than allowed without a verdict: earlier runs crashed the process.
            self._fail(task, "dead_lettered", f"gave up after {attempt - 1} attempt(s) that never finished", True)
            return
        started = time.monotonic()
        # The thread's own slot, so no lock: a dict store and pop are atomic, and abandon() pops too.
        self._running[ident] = (task, started)
        try:
            traces = self.traces
            if traces.discards:
                # Nothing would record the span, so none is built; the trace the task carries is still
                # current, under a span id of the task's own, so the handler's log lines carry its ids.
                parent = extract(task.metadata) if "traceparent" in task.metadata else None
                if parent is None:
                    self._handle(task)
                else:
                    call_in_span(parent.child(), self._handle, task)
            else:
                with traces.resume(task.metadata, f"task {task.name}", task_id=task.id, attempt=attempt):
                    self._handle(task)
        except Exception as exc:  # noqa: BLE001 - the handler's failure is the task's failure
            self._timed(started, batch)
            error = f"{type(exc).__name__}: {exc}"
            self._last_error = error
            owned = self._running.pop(ident, None) is not None
            if attempt >= self.max_attempts:
                logger.error("task %s (%s) dead-lettered after %d attempt(s): %s", task.id, task.name, attempt, error)
                self._fail(task, "dead_lettered", error, owned)
            else:
                logger.warning("task %s (%s) failed attempt %d/%d: %s",
                               task.id, task.name, attempt, self.max_attempts, error)
                self._fail(task, "retried", error, owned)
            return
        self._timed(started, batch)
        batch.processed += 1
        if self._running.pop(ident, None) is not None:
            batch.done.append(task)
        # else a forced stop already gave this task back to the queue

    def _timed(self, started: float, batch: _Batch) -> None:
        """Note a handler's duration for the histogram and the batching decision."""
        elapsed = time.monotonic() - started
        batch.durations.append(elapsed)
        # Shared by the threads (they run one handler) and updated without a lock: a lost update
        # only delays the decision by a task.
        smoothed = self._handler_time + (min(elapsed, SLOW_SAMPLE) - self._handler_time) * SMOOTHING
        self._handler_time = smoothed
        # Hysteresis: batching starts under QUICK_HANDLER and ends over twice that.
        if self._batching:
            if smoothed > 2 * QUICK_HANDLER:
                self._batching = False
        elif smoothed < QUICK_HANDLER:
            self._batching = True

    def _record(self, batch: _Batch) -> None:
        """Add a batch's successes and durations to the counters, under one lock for the batch."""
        if not batch.durations:
            return
        with self._lock:
            self._counts["processed"] += batch.processed
            for elapsed in batch.durations:
                self.durations.observe(elapsed)

    def _fail(self, task: Task, outcome: str, error: str, owned: bool) -> None:
        """Count a failure and settle it with the queue (unless a forced stop already gave the task back)."""
        with self._lock:
            self._counts[outcome] += 1
            self._counts["failed"] += 1
        if not owned:
            return
        if outcome == "retried":
            self.queue.nack(task, retry_delay=self.retry_backoff.delay(task.attempts))
        else:
            self.queue.dead_letter(task, error)


class _Batch:
    """What one consumer thread did with one lease: successes to acknowledge, counts and durations."""

    __slots__ = ("done", "durations", "processed")

    def __init__(self) -> None:
        self.done: list[Task] = []
        self.durations: list[float] = []
        self.processed = 0
