"""WorkerSupervisor: starts workers, watches them, restarts crashed ones with backoff, stops them in one budget."""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from plba.backoff import Backoff
from plba.contracts import HealthStatus, Worker, WorkerHealth, WorkerState, WorkerStatus
from plba.stats import MinuteCounts

logger = logging.getLogger("plba.supervisor")

# How often a drain looks for a second Ctrl-C while joining workers.
FORCE_CHECK_INTERVAL = 0.05


@dataclass(frozen=True)
class RestartPolicy:
    """At most `budget` restarts within `window` seconds, spaced by jittered exponential backoff."""

    budget: int = 5
    window: float = 60.0
    backoff: Backoff = Backoff(base=0.5, cap=30.0)
    check_interval: float = 0.2


@dataclass
class _Supervised:
    worker: Worker
    restarts: collections.deque = field(default_factory=collections.deque)
    restart_at: float | None = None
    gave_up: bool = False
    total_restarts: int = 0
    start_error: str | None = None
    # The broken reading last logged, so a worker that keeps breaking its contract is logged once.
    broken_reading: str | None = None
    # The worker's processed and failed counts when the supervisor started, to count a run's tasks.
    counts_at_start: tuple[int, int] = (0, 0)
    # Its processed and failed counts at the supervisor's previous look, for the per-minute counts.
    counts_seen: tuple[int, int] = (0, 0)

    def status(self) -> WorkerStatus:
        """The worker's status; `failed` while its last start raised, or when it cannot be read."""
        return self.read_status()[0]

    def read_status(self, reading: tuple[WorkerStatus, str | None] | None = None) -> tuple[WorkerStatus, str | None]:
        """The status and, when `status()` broke its contract, why; `reading` is the worker's own, if already taken."""
        if self.start_error:
            return WorkerStatus(WorkerState.FAILED, last_error=self.start_error), None
        return reading if reading is not None else read_status(self.worker)


@dataclass
class StopSummary:
    """What a run and its stop did: tasks processed and failed during the run, then the stop itself.

    Tasks are what queue workers ran; what the other workers did (schedule runs, a watcher's units
    of work) is counted apart, in `other_units` and `other_failed`.

    The stop's counts: tasks finished while draining, forced (given back to their queue) and left
    queued. `queued` counts everything waiting in the runtime's queues afterwards, forced tasks included;
    `unreadable` names each count that could not be read (a queue whose server is down, a worker
    whose `status()` is broken), so a number is never silently short.
    """

    finished: int = 0
    queued: int = 0
    forced: int = 0
    workers_forced: list[str] = field(default_factory=list)
    processed: int = 0
    failed: int = 0
    other_units: int = 0
    other_failed: int = 0
    unreadable: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        forced = f" (workers: {', '.join(self.workers_forced)})" if self.workers_forced else ""
        others = (f" (other workers: {self.other_units} unit(s) of work, {self.other_failed} failed)"
                  if self.other_units or self.other_failed else "")
        text = (f"{self.processed} task(s) processed and {self.failed} failed during the run{others}; "
                f"{self.finished} finished while draining, {self.forced} forced back to the queue{forced}, "
                f"{self.queued} left queued")
        if self.unreadable:
            text += f"; could not read {'; '.join(self.unreadable)}"
        return text


def read_status(worker: Worker) -> tuple[WorkerStatus, str | None]:
    """The worker's status and None; or, when `status()` raised or returned something else, `failed` and why."""
    return _read(worker, "status", WorkerStatus,
                 lambda error: WorkerStatus(WorkerState.FAILED, last_error=error))


def read_health(worker: Worker) -> tuple[WorkerHealth, str | None]:
    """The worker's health and None; or, when `health()` raised or returned something else, unhealthy and why."""
    return _read(worker, "health", WorkerHealth, lambda error: WorkerHealth(HealthStatus.UNHEALTHY, error))


def worker_status(worker: Worker) -> WorkerStatus:
    """The worker's status, or `failed` naming the broken contract when it cannot be read."""
    return read_status(worker)[0]


def _read(worker: Worker, method: str, expected: type, fallback: Callable[[str], Any]) -> tuple[Any, str | None]:
    # A worker whose own reporting is broken must not take the supervisor (or the others) down:
    # the reading is replaced by one that names the worker and what it did instead.
    try:
        value = getattr(worker, method)()
    except Exception as exc:  # noqa: BLE001
        error = f"worker {worker.name!r}.{method}() raised {type(exc).__name__}: {exc}"
    else:
        if isinstance(value, expected):
            return value, None
        what = "None" if value is None else type(value).__name__
        error = f"worker {worker.name!r}.{method}() returned {what}, expected {expected.__name__}"
    return fallback(error), error


class WorkerSupervisor:
    """Owns the workers of a runtime and keeps them alive within a restart budget."""

    def __init__(
        self,
        policy: RestartPolicy | None = None,
        on_give_up: Callable[[Worker], None] | None = None,
    ) -> None:
        self.policy = policy or RestartPolicy()
        self.on_give_up = on_give_up
        self._workers: list[_Supervised] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._closed = False
        self.throughput = MinuteCounts()

    @property
    def workers(self) -> list[Worker]:
        """The supervised workers, in registration order."""
        return [entry.worker for entry in self._workers]

    def add(self, worker: Worker) -> None:
        """Supervise `worker`; names must be unique."""
        if any(entry.worker.name == worker.name for entry in self._workers):
            raise ValueError(f"a worker named {worker.name!r} is already registered")
        self._workers.append(_Supervised(worker))

    def start(self) -> None:
        """Start every worker and the monitor; a worker that fails to start is restarted like a crash."""
        self._stop.clear()
        self._closed = False
        for entry in self._workers:
            entry.restarts.clear()
            entry.gave_up = False
            entry.restart_at = None
            entry.broken_reading = None
            status, _ = entry.read_status()
            entry.counts_at_start = entry.counts_seen = (status.processed, status.failed)
            self._start_worker(entry)
        self._monitor = threading.Thread(target=self._watch, name="plba-supervisor", daemon=True)
        self._monitor.start()

    def stop(self, timeout: float, force: bool = False, force_event: threading.Event | None = None) -> StopSummary:
        """Stop intake everywhere, let in-flight work finish within `timeout`, then force what remains.

        Setting `force_event` during the drain (a second Ctrl-C) cuts the budget short.
        """
        self._stop.set()
        if self._monitor is not None:
            self._monitor.join()
        summary = StopSummary()
        in_flight_before = sum(self._read_for_summary(entry, summary).in_flight for entry in self._workers)
        # Ask every worker first, then wait: they drain in parallel within one shared budget.
        # Even a forced stop starts gracefully, so what is forced is counted before it is given back.
        for worker in self.workers:
            _call_quietly(worker, "stop", force=False)
        deadline = time.monotonic() + (0 if force else timeout)
        for worker in self.workers:
            if not _join_until(worker, deadline, force_event):
                summary.workers_forced.append(worker.name)
                summary.forced += worker_status(worker).in_flight
                _call_quietly(worker, "stop", force=True)
        summary.finished = max(0, in_flight_before - summary.forced)
        # What the drain finished is counted too: the monitor no longer looks.
        readings = [read_status(entry.worker) for entry in self._workers]
        self._count_throughput(readings)
        for entry, (status, broken) in zip(self._workers, readings, strict=True):
            if broken is None:
                processed = max(0, status.processed - entry.counts_at_start[0])
                failed = max(0, status.failed - entry.counts_at_start[1])
                if entry.worker.consumes() is not None:
                    summary.processed += processed
                    summary.failed += failed
                else:
                    summary.other_units += processed
                    summary.other_failed += failed
        return summary

    def close(self) -> None:
        """Call every worker's `close()` once after the final stop, so it frees its connections."""
        if self._closed:
            return
        self._closed = True
        for worker in self.workers:
            _call_quietly(worker, "close")

    @staticmethod
    def _read_for_summary(entry: _Supervised, summary: StopSummary) -> WorkerStatus:
        """The worker's status before the drain; a broken one is named in the summary's unreadable counts."""
        status, broken = read_status(entry.worker)
        if broken is not None:
            summary.unreadable.append(f"the counts of worker {entry.worker.name!r} ({broken})")
        return status

    def statuses(self) -> list[dict[str, Any]]:
        """Each worker's status with its name, criticality and restart count."""
        result = []
        for entry in self._workers:
            status = entry.status().to_dict()
            result.append({"name": entry.worker.name, "critical": entry.worker.critical,
                           "restarts": entry.total_restarts, **status})
        return result

    def health(self) -> list[tuple[str, WorkerHealth, bool]]:
        """Each worker's health reading; a worker the supervisor gave up on is unhealthy."""
        readings = []
        for entry in self._workers:
            if entry.gave_up:
                health = WorkerHealth(HealthStatus.UNHEALTHY, "kept crashing; restart budget exhausted")
            else:
                health, broken = read_health(entry.worker)
                if broken is None:
                    # A status that cannot be read is a broken worker too, whatever its health says.
                    _, broken = entry.read_status()
                    if broken is not None:
                        health = WorkerHealth(HealthStatus.UNHEALTHY, broken)
            readings.append((entry.worker.name, health, entry.worker.critical))
        return readings

    def restarts(self) -> dict[str, int]:
        """Restart counts by worker name."""
        return {entry.worker.name: entry.total_restarts for entry in self._workers}

    def gave_up_on(self) -> list[Worker]:
        """Workers the supervisor stopped restarting."""
        return [entry.worker for entry in self._workers if entry.gave_up]

    # -- monitoring ------------------------------------------------------------------------

    def _watch(self) -> None:
        while not self._stop.wait(self.policy.check_interval):
            # One reading of each worker a tick serves both the check and the counts.
            readings = [read_status(entry.worker) for entry in self._workers]
            for entry, reading in zip(self._workers, readings, strict=True):
                if not entry.gave_up:
                    self._check(entry, reading)
            self._count_throughput(readings)

    def _count_throughput(self, readings: list[tuple[WorkerStatus, str | None]]) -> None:
        """Add the tasks queue workers processed and failed since the last `readings` to this minute's counts."""
        processed = failed = 0
        for entry, (status, broken) in zip(self._workers, readings, strict=True):
            if entry.worker.consumes() is None:
                continue  # schedule runs and other units of work are not tasks
            if broken is not None:
                # Its counts are unknown, not zero: the growth is counted once it answers again.
                continue
            seen_processed, seen_failed = entry.counts_seen
            # A counter that went back (a worker that reset it) counts from zero again.
            processed += status.processed - seen_processed if status.processed >= seen_processed else status.processed
            failed += status.failed - seen_failed if status.failed >= seen_failed else status.failed
            entry.counts_seen = (status.processed, status.failed)
        self.throughput.add(processed, failed)

    def _check(self, entry: _Supervised, reading: tuple[WorkerStatus, str | None]) -> None:
        now = time.monotonic()
        if entry.restart_at is not None:
            if now >= entry.restart_at:
                entry.restart_at = None
                self._start_worker(entry)
            return
        status, broken = entry.read_status(reading)
        if broken is not None:
            # The worker's real state is unknown, and restarting cannot mend its reporting (it would
            # only abandon work it may be doing fine): it is reported failed and unhealthy instead.
            if broken != entry.broken_reading:
                logger.error("%s: reported as failed and unhealthy until it answers again", broken)
            entry.broken_reading = broken
            return
        if entry.broken_reading is not None:
            logger.info("worker %s answers status() again", entry.worker.name)
            entry.broken_reading = None
        if status.state != WorkerState.FAILED:
            return
        while entry.restarts and now - entry.restarts[0] > self.policy.window:
            entry.restarts.popleft()
        if len(entry.restarts) >= self.policy.budget:
            entry.gave_up = True
            logger.error("worker %s keeps crashing (%d restarts in %gs): giving up; last error: %s",
                         entry.worker.name, len(entry.restarts), self.policy.window, status.last_error)
            _call_quietly(entry.worker, "stop", force=True)
            if self.on_give_up is not None:
                self.on_give_up(entry.worker)
            return
        entry.restarts.append(now)
        entry.total_restarts += 1
        delay = self.policy.backoff.delay(len(entry.restarts))
        logger.warning("worker %s failed (%s); restart %d in %.2fs",
                       entry.worker.name, status.last_error, entry.total_restarts, delay)
        _call_quietly(entry.worker, "stop", force=True)
        entry.restart_at = now + delay

    def _start_worker(self, entry: _Supervised) -> None:
        try:
            entry.worker.start()
        except Exception as exc:  # noqa: BLE001 - a worker that cannot start is treated as crashed
            entry.start_error = f"start() raised {type(exc).__name__}: {exc}"
            logger.error("worker %s failed to start: %s", entry.worker.name, entry.start_error)
        else:
            entry.start_error = None


def _call_quietly(worker: Worker, method: str, **kwargs: Any) -> None:
    try:
        getattr(worker, method)(**kwargs)
    except Exception as exc:  # noqa: BLE001 - one worker's failure to stop never blocks the others
        logger.error("worker %s: %s() raised %s: %s", worker.name, method, type(exc).__name__, exc)


def _join_until(worker: Worker, deadline: float, force_event: threading.Event | None) -> bool:
    """Join `worker` until the deadline, in short slices when a force request may cut it short."""
    if force_event is None:
        return _join(worker, max(0.0, deadline - time.monotonic()))
    while not force_event.is_set():
        remaining = deadline - time.monotonic()
        if _join(worker, min(max(0.0, remaining), FORCE_CHECK_INTERVAL)):
            return True
        if remaining <= 0:
            return False
    return _join(worker, 0)


def _join(worker: Worker, timeout: float) -> bool:
    try:
        return bool(worker.join(timeout))
    except Exception as exc:  # noqa: BLE001
        logger.error("worker %s: join() raised %s: %s", worker.name, type(exc).__name__, exc)
        return False

