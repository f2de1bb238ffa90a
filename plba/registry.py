"""The registry plugins fill in their hooks: workers, queues, health checks, shared services."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from plba.contracts import TaskQueue, Worker
from plba.health import HealthCheck
from plba.schedule.definition import Firing, Schedule


class Services(dict):
    """Shared platform services by name (`traces`, `config`, `settings`, `runtime`, ...)."""


class Registry:
    """What the runtime runs: workers, queues and health checks, with the settings and services."""

    def __init__(self, settings: Any, services: Services, build_queue: Callable[[str, Any], TaskQueue]) -> None:
        self.settings = settings
        self.services = services
        self._build_queue = build_queue
        self.workers: list[Worker] = []
        self.queues: dict[str, TaskQueue] = {}
        self.health_checks: list[tuple[str, HealthCheck, bool]] = []
        self.schedules: list[Schedule] = []

    def scope(self, owner: str) -> RegistryScope:
        """A view for one plugin whose additions count only once `commit()` is called."""
        return RegistryScope(self, owner)


class RegistryScope:
    """One plugin's view of the registry; a plugin that fails mid-hook leaves nothing behind."""

    def __init__(self, registry: Registry, owner: str) -> None:
        self._registry = registry
        self.owner = owner
        self._workers: list[Worker] = []
        self._queues: dict[str, TaskQueue] = {}
        self._checks: list[tuple[str, HealthCheck, bool]] = []
        self._schedules: list[Schedule] = []

    @property
    def settings(self) -> Any:
        """The merged configuration."""
        return self._registry.settings

    @property
    def services(self) -> Services:
        """Shared platform services: `services.get("traces")` is the TraceService."""
        return self._registry.services

    def add_worker(self, worker: Worker) -> Worker:
        """Have the runtime start, supervise and stop `worker`; returns it."""
        if not isinstance(worker, Worker):
            raise TypeError(f"plugin {self.owner!r}: add_worker needs a plba.contracts.Worker, "
                            f"not {type(worker).__name__}")
        names = {w.name for w in (*self._registry.workers, *self._workers)}
        if worker.name in names:
            raise ValueError(f"plugin {self.owner!r}: a worker named {worker.name!r} is already registered")
        self._workers.append(worker)
        return worker

    def add_queue(self, name: str, queue: TaskQueue) -> TaskQueue:
        """Register a queue the plugin built itself, so it shows in status and metrics; returns it."""
        if not isinstance(queue, TaskQueue):
            raise TypeError(f"plugin {self.owner!r}: add_queue needs a plba.contracts.TaskQueue, "
                            f"not {type(queue).__name__}")
        if name in self._registry.queues or name in self._queues:
            raise ValueError(f"plugin {self.owner!r}: a queue named {name!r} is already registered")
        self._queues[name] = queue
        return queue

    def queue(self, name: str) -> TaskQueue:
        """The queue called `name`, built from `[platform.queues.<name>]` the first time it is asked for."""
        existing = self._registry.queues.get(name) or self._queues.get(name)
        if existing is None:
            existing = self._queues[name] = self._registry._build_queue(name, self.settings)
        return existing

    def add_health(self, name: str, check: HealthCheck, critical: bool = True) -> None:
        """Register a callable returning a WorkerHealth; one that raises or overruns counts as unhealthy."""
        if not callable(check):
            raise TypeError(f"plugin {self.owner!r}: health check {name!r} must be callable")
        self._checks.append((name, check, critical))

    def schedule(self, name: str, routine: Callable[[Firing], Any], *, every: float | None = None,
                 cron: str | None = None, timezone: str = "UTC", misfire: str = "once",
                 critical: bool = False, at_start: bool = False) -> Schedule:
        """Call `routine(firing)` at each slot, `every` seconds or by `cron` in `timezone`, once per slot in the fleet.

        `misfire="once"` fires one catch-up for slots missed while nothing ran, `"skip"` none;
        `at_start=True` also fires the current slot at start unless it already fired in the fleet;
        `[platform.schedules."<name>"]` overrides the timing and `enabled` by settings.
        """
        definition = Schedule.define(name, routine, every=every, cron=cron, timezone=timezone, misfire=misfire,
                                     critical=critical, at_start=at_start)
        if name in {s.name for s in (*self._registry.schedules, *self._schedules)}:
            raise ValueError(f"plugin {self.owner!r}: a schedule named {name!r} is already registered")
        self._schedules.append(definition)
        return definition

    def commit(self) -> None:
        """Hand this plugin's additions to the registry."""
        self._registry.workers.extend(self._workers)
        self._registry.schedules.extend(self._schedules)
        self._registry.queues.update(self._queues)
        self._registry.health_checks.extend(self._checks)

    def discard(self) -> None:
        """Drop this plugin's additions, closing queues it made."""
        for queue in self._queues.values():
            try:
                queue.close()
            except Exception:  # noqa: BLE001, S110 - best effort on a path that is already failing
                pass
