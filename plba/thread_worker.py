"""ThreadWorker: a subclass writes only `run(stop)`; the base owns the threads, crashes, status and health."""

from __future__ import annotations

import abc
import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Iterable, Iterator

from plba.contracts import HealthStatus, Worker, WorkerHealth, WorkerState, WorkerStatus

logger = logging.getLogger("plba.worker")


def join_threads(threads: Iterable[threading.Thread], timeout: float | None) -> bool:
    """Join `threads` within one `timeout` for them all (None waits forever); True when every one ended."""
    threads = list(threads)
    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in threads:
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return not any(thread.is_alive() for thread in threads)


class ThreadWorker(Worker):
    """A worker made of `threads` threads, each running `run(stop)` until `stop` is set.

    An exception escaping `run` marks the worker failed with the error (unhealthy), and the
    supervisor restarts it with backoff; so does a `run` that returns before a stop was asked.
    Wrap each unit of work in `with self.busy():` to show the worker busy and count it.
    """

    def __init__(self, name: str, *, threads: int = 1, critical: bool = True) -> None:
        if threads < 1:
            raise ValueError(f"worker {name!r}: threads must be at least 1, not {threads}")
        self.name = name
        self.threads = threads
        self.critical = critical
        self.started_at: float | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._state = WorkerState.STOPPED
        self._units = itertools.count()
        self._busy: dict[int, float] = {}
        self._processed = 0
        self._failed = 0
        self._last_error: str | None = None
        self._crash: str | None = None

    @abc.abstractmethod
    def run(self, stop: threading.Event) -> None:
        """The thread body: work until `stop` is set, waiting on it (`stop.wait(s)`) rather than sleeping."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the threads, each calling `run` with a fresh stop event."""
        # A new event per start: threads of a crashed run still see theirs set and wind down.
        self._stop = threading.Event()
        self._crash = None
        self._state = WorkerState.STARTING
        names = [self.name] if self.threads == 1 else [f"{self.name}-{i}" for i in range(self.threads)]
        self._threads = [threading.Thread(target=self._main, args=(self._stop,), name=thread_name, daemon=True)
                         for thread_name in names]
        self.started_at = time.monotonic()
        for thread in self._threads:
            thread.start()
        self._state = WorkerState.IDLE

    def stop(self, force: bool = False) -> None:
        """Set the stop event and return at once; `run` is expected to return soon after."""
        self._state = WorkerState.STOPPING
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads within `timeout`; True when all ended."""
        ended = join_threads(self._threads, timeout)
        if ended and self._state == WorkerState.STOPPING:
            self._state = WorkerState.STOPPED
        return ended

    # -- units of work ---------------------------------------------------------------------

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        """Mark one unit of work: busy while it runs, then counted processed, or failed when it raises (re-raised)."""
        unit = next(self._units)
        with self._lock:
            self._busy[unit] = time.monotonic()
        try:
            yield
        except Exception as exc:
            with self._lock:
                self._failed += 1
                self._last_error = f"{type(exc).__name__}: {exc}"
            raise
        else:
            with self._lock:
                self._processed += 1
        finally:
            with self._lock:
                self._busy.pop(unit, None)

    # -- readings --------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Units of work the worker runs at once: its `threads`."""
        return self.threads

    def status(self) -> WorkerStatus:
        """State (failed after a crash, busy while a unit runs), counters and the last error."""
        with self._lock:
            in_flight, processed, failed = len(self._busy), self._processed, self._failed
        state = self._state
        if self._crash:
            state = WorkerState.FAILED
        elif state == WorkerState.IDLE and in_flight:
            state = WorkerState.BUSY
        return WorkerStatus(state, in_flight, processed, failed, self._crash or self._last_error)

    def health(self) -> WorkerHealth:
        """Unhealthy after a crash (until restarted), else ok."""
        if self._crash:
            return WorkerHealth(HealthStatus.UNHEALTHY, f"run() crashed: {self._crash}")
        return WorkerHealth(HealthStatus.OK, f"{self.threads} thread(s)")

    def stuck_for(self) -> float:
        """Seconds the oldest unit of work in progress has run; 0 when none is (read by `/health/live`)."""
        with self._lock:
            starts = list(self._busy.values())
        return time.monotonic() - min(starts) if starts else 0.0

    # -- the thread ------------------------------------------------------------------------

    def _main(self, stop: threading.Event) -> None:
        try:
            self.run(stop)
        except Exception as exc:  # noqa: BLE001 - a crash is reported through status, then restarted
            self._crash = f"{type(exc).__name__}: {exc}"
            logger.exception("worker %s: run() crashed", self.name)
        else:
            if not stop.is_set():
                self._crash = "run() returned before a stop was asked"
                logger.error("worker %s: %s", self.name, self._crash)
