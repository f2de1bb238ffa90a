"""The keeper thread a broker queue (Redis, PostgreSQL) runs beside its consumers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable


class Keeper:
    """Starts one thread on first use and stops it on close; its rounds send what waits and renew leases.

    A round flushes acks, resends results kept during an outage and, every third of the visibility
    timeout, renews the leases this consumer holds. An outage is logged once, and so is the recovery.
    """

    def __init__(self, thread_name: str, visibility_timeout: float, failures: tuple[type[BaseException], ...],
                 logger: logging.Logger) -> None:
        self.thread_name = thread_name
        self.failures = failures
        self.logger = logger
        self.closing = threading.Event()
        self.failing = False
        self._renew_every = visibility_timeout / 3
        self._next_renewal = time.monotonic() + self._renew_every
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self, run: Callable[[], None]) -> None:
        """Run `run` in the keeper thread unless it is running already or the queue is closing."""
        if self._thread is not None or self.closing.is_set():
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=run, name=self.thread_name, daemon=True)
                self._thread.start()

    @property
    def started(self) -> bool:
        """Whether the thread was started."""
        return self._thread is not None

    def stop(self, timeout: float | None = 5.0) -> None:
        """Ask the thread to end and wait up to `timeout` seconds (None: as long as it takes) for it."""
        self.closing.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def round(self, flush: Callable[[], None], resend: Callable[[], None], renew: Callable[[], None],
              outage: str, recovered: str) -> None:
        """One round; `outage` (given the error) and `recovered` are logged once at each change."""
        try:
            flush()
            resend()
            if time.monotonic() >= self._next_renewal:
                renew()
                self._next_renewal = time.monotonic() + self._renew_every
        except self.failures as exc:
            if not self.failing:
                self.logger.warning("%s: %s", outage, exc)
            self.failing = True
        else:
            if self.failing:
                self.logger.info("%s", recovered)
            self.failing = False
