"""HealthRegistry: named checks, each run with a timeout, aggregated into ok, degraded or unhealthy."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from plba.contracts import HealthStatus, WorkerHealth

logger = logging.getLogger("plba.health")

HealthCheck = Callable[[], WorkerHealth]


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

    def result(self, timeout: float) -> Component:
        """The current run's reading, or unhealthy when it raised, overran or returned garbage."""
        try:
            result = self._pending.result(timeout)
        except TimeoutError:
            return self._unhealthy("check did not answer within the health timeout")
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
    """The health checks plugins and the runtime registered."""

    def __init__(self, timeout: float = 5.0) -> None:
        self.timeout = timeout
        self._checks: dict[str, _TimedCheck] = {}

    def add(self, name: str, check: HealthCheck, critical: bool = True) -> None:
        """Register `check` under `name`; a name can be registered once."""
        if name in self._checks:
            raise ValueError(f"health check {name!r} is already registered")
        if not callable(check):
            raise TypeError(f"health check {name!r} must be callable and return a WorkerHealth")
        self._checks[name] = _TimedCheck(name, check, critical)

    def read(self) -> list[Component]:
        """Run every check (in parallel, each bounded by the timeout) and return their readings."""
        checks = list(self._checks.values())
        # Start them all before waiting on any, so N slow checks cost one timeout, not N.
        for check in checks:
            check.start()
        deadline = time.monotonic() + self.timeout
        return [check.result(max(0.0, deadline - time.monotonic())) for check in checks]
