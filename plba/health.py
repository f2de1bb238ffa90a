"""HealthRegistry: named checks, each run with a timeout, aggregated into ok, degraded or unhealthy."""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from plba.contracts import HealthStatus, WorkerHealth

logger = logging.getLogger("plba.health")

HealthCheck = Callable[[], WorkerHealth]
# How much longer than the timeout a reader waits for an evaluation: its own bookkeeping.
EVALUATION_GRACE = 0.5


@dataclass
class Component:
    """One health reading with whether its component is critical."""

    name: str
    health: WorkerHealth
    critical: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON shape used in `/health`."""
        return {**self.health.to_dict(), "critical": self.critical}


def aggregate(components: Iterable[Component]) -> HealthStatus:
    """Unhealthy when a critical component is; degraded when anything else is not ok."""
    overall = HealthStatus.OK
    for component in components:
        status = component.health.status
        if status == HealthStatus.UNHEALTHY and component.critical:
            return HealthStatus.UNHEALTHY
        if status != HealthStatus.OK:
            overall = HealthStatus.DEGRADED
    return overall


class _TimedCheck:
    """Runs a check in its own daemon thread so a hanging check costs one thread, never the caller."""

    def __init__(self, name: str, check: HealthCheck, critical: bool) -> None:
        self.name = name
        self.check = check
        self.critical = critical
        self._pending: Future | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Begin a run, unless the previous one is still hanging (then its result is awaited again)."""
        with self._lock:
            if self._pending is None or self._pending.done():
                self._pending = Future()
                runner = threading.Thread(target=self._run, args=(self._pending,), name=f"health-{self.name}",
                                          daemon=True)
                runner.start()

    def result(self, timeout: float, waiting: str = "check did not answer within the health timeout") -> Component:
        """The current run's reading, or unhealthy (`waiting` says why) when it raised, overran or returned garbage."""
        pending = self._pending
        if pending is None:
            return self._unhealthy(waiting)
        try:
            result = pending.result(timeout)
        except TimeoutError:
            return self._unhealthy(waiting)
        except Exception as exc:  # noqa: BLE001 - a check that raises counts as unhealthy
            return self._unhealthy(f"check raised {type(exc).__name__}: {exc}")
        if not isinstance(result, WorkerHealth):
            return self._unhealthy(f"check returned {type(result).__name__}, not WorkerHealth")
        return Component(self.name, result, self.critical)

    def _run(self, future: Future) -> None:
        try:
            future.set_result(self.check())
        except BaseException as exc:  # noqa: BLE001 - handed to the reader
            future.set_exception(exc)

    def _unhealthy(self, detail: str) -> Component:
        return Component(self.name, WorkerHealth(HealthStatus.UNHEALTHY, detail), self.critical)


class HealthRegistry:
    """The health checks plugins and the runtime registered, read by one shared evaluation at a time.

    Concurrent readers wait for the same evaluation instead of each running every check, and its
    readings are reused for `cache` seconds, so a flood of `/health` costs one run of the checks.
    """

    def __init__(self, timeout: float = 5.0, cache: float = 1.0) -> None:
        self.timeout = timeout
        self.cache = cache
        self._checks: dict[str, _TimedCheck] = {}
        self._lock = threading.Lock()
        self._evaluation: Future | None = None
        self._evaluation_started = 0.0
        self._last: list[Component] | None = None
        self._last_at = -math.inf

    def add(self, name: str, check: HealthCheck, critical: bool = True) -> None:
        """Register `check` under `name`; a name can be registered once."""
        if name in self._checks:
            raise ValueError(f"health check {name!r} is already registered")
        if not callable(check):
            raise TypeError(f"health check {name!r} must be callable and return a WorkerHealth")
        self._checks[name] = _TimedCheck(name, check, critical)

    def read(self, patience: float | None = None) -> list[Component]:
        """Every check's reading: recent cached ones, or those of the evaluation in progress (started if none).

        Each check is bounded by the timeout, so by default this waits at most about that long.
        With `patience`, it waits only until the evaluation has run that many seconds, then
        returns the previous readings (or, before any, each unfinished check as not answered yet).
        """
        if not self._checks:
            return []
        with self._lock:
            now = time.monotonic()
            if self._last is not None and now - self._last_at < self.cache:
                return self._last
            if self._evaluation is None:
                self._evaluation = Future()
                self._evaluation_started = now
                threading.Thread(target=self._evaluate, args=(self._evaluation,), name="plba-health",
                                 daemon=True).start()
            evaluation, started, previous = self._evaluation, self._evaluation_started, self._last
        limit = self.timeout + EVALUATION_GRACE if patience is None else patience
        try:
            return evaluation.result(max(0.0, started + limit - time.monotonic()))
        except TimeoutError:
            if previous is not None:
                return previous
            return [check.result(0.0, waiting="check has not answered yet") for check in self._checks.values()]

    def _evaluate(self, future: Future) -> None:
        try:
            checks = list(self._checks.values())
            # Start them all before waiting on any, so N slow checks cost one timeout, not N.
            for check in checks:
                check.start()
            deadline = time.monotonic() + self.timeout
            readings = [check.result(max(0.0, deadline - time.monotonic())) for check in checks]
        except BaseException as exc:  # noqa: BLE001 - handed to the readers waiting on it
            with self._lock:
                self._evaluation = None
            future.set_exception(exc)
            return
        with self._lock:
            self._last, self._last_at, self._evaluation = readings, time.monotonic(), None
        future.set_result(readings)
