"""RuntimeManager: builds the runtime from plugins and settings, and owns its lifecycle."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from plba import __version__
from plba.backoff import Backoff
from plba.cluster import ClusterStore, build_cluster_store
from plba.cluster.heartbeat import Heartbeat
from plba.config import ConfigurationManager
from plba.contracts import HealthStatus, Worker, WorkerState
from plba.db import Database, database_location, open_database
from plba.errors import PluginError, QueueUnavailableError, StartupTimeoutError, StateError
from plba.health import Component, HealthRegistry, aggregate
from plba.plugins import PluginSet
from plba.queue.factory import build_queue
from plba.registry import Registry, Services
from plba.schedule import Scheduler, apply_overrides, build_scheduler, override_problems
from plba.schema import SCHEDULE_PREFIX
from plba.signals import stop_on_signals
from plba.stats import MinuteCounts
from plba.supervisor import RestartPolicy, StopSummary, WorkerSupervisor
from plba.tracing.factory import build_transport
from plba.tracing.service import TraceService

if TYPE_CHECKING:
    from plba.actions import Actions
    from plba.control.server import ControlServer

logger = logging.getLogger("plba.runtime")

NOT_STARTED = "not_started"
# Readiness waits this long for a health evaluation in progress, then answers from the previous one.
READY_PATIENCE = 0.5
# Retries of an unreachable broker at start: 0.2 s, doubling, at most 5 s apart.
BROKER_RETRY = Backoff(base=0.2, cap=5.0)
# Longest `run()` waits before the main thread looks again for a signal that landed on another thread.
SIGNAL_CHECK_INTERVAL = 0.5


class Built(NamedTuple):
    """What `RuntimeManager.build()` makes, for the lifecycle steps that come after it."""

    registry: Registry
    supervisor: WorkerSupervisor
    cluster: ClusterStore


class RuntimeManager:
    """The platform facade: start, run, stop, status and health of one runtime."""

    def __init__(self, config: ConfigurationManager, plugins: PluginSet, enable_http_control: bool = True) -> None:
        self.config = config
        config.add_check(override_problems)
        self.plugins = plugins
        self.enable_http_control = enable_http_control
        self.traces = TraceService()
        self.services = Services(traces=self.traces, config=config, runtime=self)
        self.registry: Registry | None = None
        self.health_registry = HealthRegistry()
        self.supervisor: WorkerSupervisor | None = None
        self.cluster: ClusterStore | None = None
        self.scheduler: Scheduler | None = None
        self.heartbeat: Heartbeat | None = None
        self.control: ControlServer | None = None
        self.failure: str | None = None
        self.last_stop: StopSummary | None = None
        self.started_at: float | None = None
        # While start-up waits for a broker: what it waits for, which readiness reports.
        self.waiting_for: str | None = None
        self._state = NOT_STARTED
        self._lifecycle = threading.RLock()
        self._stop_requested = threading.Event()
        self._force_requested = threading.Event()
        self._stop_timeout: float | None = None
        self._atexit_registered = False
        self._actions: Actions | None = None
        self._actions_lock = threading.Lock()
        # Called on each start once the control plane listens and before any worker starts (the banner).
        self.announce: Callable[[RuntimeManager], None] | None = None
        self._database: Database | None = None
        self._database_lock = threading.Lock()

    # -- building --------------------------------------------------------------------------

    @property
    def settings(self) -> Any:
        """The merged configuration currently in force."""
        return self.config.settings

    @property
    def database(self) -> Database:
        """The platform database `platform.database` names (created on first write); reopened if a reload moves it."""
        location = database_location(self.settings)
        with self._database_lock:
            if self._database is None or self._database.location != location:
                if self._database is not None:
                    self._database.close()
                self._database = open_database(location)
            return self._database

    @property
    def actions(self) -> Actions:
        """The platform's actions bound to this runtime: how the control plane, CLI and console change anything."""
        with self._actions_lock:
            if self._actions is None:
                # Imported here: the actions sit a layer above the runtime they act on.
                from plba.actions import build_actions

                self._actions = build_actions(self)
            return self._actions

    def build(self) -> None:
        """Configure plugins, validate settings, and collect workers, queues and health checks.

        Idempotent. Raises ConfigError (every problem listed) or PluginError (naming the plugin);
        a plugin that fails leaves nothing half-registered.
        """
        if self.registry is not None:
            return
        settings = self.settings
        self.services["settings"] = settings
        self.plugins.configure(settings)
        for warning in self.config.validate(settings, plugins=[info.name for info in self.plugins.infos]):
            logger.warning("%s", warning)
        self.traces.transport = build_transport(settings)
        registry = Registry(settings, self.services, build_queue)
        try:
            for hook in ("register_workers", "register_health"):
                self.plugins.register(registry, hook)
            self.cluster = self.cluster or build_cluster_store(settings)
            self.services["cluster"] = self.cluster
            self.scheduler = build_scheduler(registry.schedules, settings, self.cluster, self.traces)
        except Exception:
            _close_queues(registry)
            raise
        self.registry = registry
        self.health_registry = HealthRegistry(timeout=float(settings.get("platform.health_timeout", 5.0)),
                                              cache=float(settings.get("platform.health_cache")))
        for name, check, critical in registry.health_checks:
            self.health_registry.add(name, check, critical)
        self.supervisor = WorkerSupervisor(_restart_policy(settings), on_give_up=self._on_give_up)
        for worker in registry.workers:
            self.supervisor.add(worker)
        if self.scheduler is not None:
            self.supervisor.add(self.scheduler)
            for schedule in registry.schedules:
                self.health_registry.add(f"schedule {schedule.name}", self.scheduler.health_check(schedule.name),
                                         schedule.critical)
        self.config.subscribe(self._on_reload)

    def _built(self) -> Built:
        """What `build()` made; StateError before it ran."""
        if self.registry is None or self.supervisor is None or self.cluster is None:
            raise StateError("the runtime is not built yet: call build() first")
        return Built(self.registry, self.supervisor, self.cluster)

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def state(self) -> str:
        """starting, idle, busy, stopping or stopped (not_started before the first start)."""
        if self._state == "running":
            busy = any(s["state"] == WorkerState.BUSY.value for s in self._built().supervisor.statuses())
            return WorkerState.BUSY.value if busy else WorkerState.IDLE.value
        return self._state

    def start(self) -> RuntimeManager:
        """Build if needed, start every worker and the control plane, and return."""
        return self._start(keep_stop_requests=False)

    def _start(self, keep_stop_requests: bool) -> RuntimeManager:
        with self._lifecycle:
            if self._state in ("starting", "running", "stopping"):
                raise StateError(f"the runtime is already {self.state}")
            self.build()
            previous_state = self._state
            self._state = WorkerState.STARTING.value
            if not keep_stop_requests:
                self._stop_requested.clear()
                self._force_requested.clear()
            self.failure = None
            try:
                self._start_control_plane()
                connected = self._connect_queues()
            except BaseException:
                self._state = previous_state
                raise
            if not connected:
                logger.info("start abandoned: a stop was requested while waiting for a broker")
                self.last_stop = StopSummary()
                self._state = WorkerState.STOPPED.value
                return self
            if self.announce is not None:
                self.announce(self)
            supervisor = self._built().supervisor
            supervisor.start()
            self.started_at = time.time()
            self._state = "running"
            self._start_heartbeat()
            if not self._atexit_registered:
                atexit.register(self._stop_at_exit)
                self._atexit_registered = True
            logger.info("runtime started: %d worker(s), %d plugin(s)", len(supervisor.workers),
                        sum(1 for info in self.plugins.infos if info.status == "loaded"))
        return self

    def _start_heartbeat(self) -> None:
        # From the first start until close, through stops and restarts, so the fleet sees every state.
        if self.heartbeat is None:
            interval = float(self.settings.get("platform.cluster.heartbeat_interval", 5.0))
            self.heartbeat = Heartbeat(self._built().cluster, interval, self.instance_record, self._on_stop_request)
            self.heartbeat.start()

    def _on_stop_request(self, request: dict[str, Any]) -> None:
        """A stop another instance asked for through the cluster store: the stop action, audited here too."""
        from plba.actions import ActionError, RelayedCaller

        logger.warning("stop requested through the cluster store by %s", request.get("by", "another instance"))
        try:
            self.actions.invoke("stop", RelayedCaller(str(request.get("by") or "fleet"), request.get("from")),
                                params={"force": bool(request.get("force", False)), "timeout": request.get("timeout")})
        except ActionError as exc:
            logger.info("stop request not taken: %s", exc)

    def _start_control_plane(self) -> None:
        # Bound before any worker starts, so a taken port fails the start with nothing to undo.
        wants_control = self.enable_http_control and self.settings.get("platform.control.enabled", True)
        if wants_control and self.control is None:
            from plba.control.server import ControlServer

            control = ControlServer(self)
            control.start()
            self.control = control

    def _connect_queues(self) -> bool:
        """Connect every queue that has a broker, retrying with backoff for `platform.startup_timeout` seconds.

        The control plane is already up meanwhile, and readiness says what is awaited. False when
        a stop is requested while waiting; StartupTimeoutError when the time runs out.
        """
        waiting = {name: connect for name, queue in self._built().registry.queues.items()
                   if callable(connect := getattr(queue, "connect", None))}
        limit = float(self.settings.get("platform.startup_timeout"))
        deadline = time.monotonic() + limit
        attempt = 0
        try:
            while True:
                problem = ""
                for name, connect in list(waiting.items()):
                    try:
                        connect()
                    except QueueUnavailableError as exc:
                        problem = str(exc)
                    else:
                        waiting.pop(name)
                if not waiting:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StartupTimeoutError(f"{problem}; gave up after {limit:g}s (platform.startup_timeout)")
                attempt += 1
                delay = min(BROKER_RETRY.delay(attempt), remaining)
                self.waiting_for = f"waiting for a broker: {problem}"
                logger.warning("%s; retrying in %.1fs (giving up in %.0fs)", self.waiting_for, delay, remaining)
                if self._stop_requested.wait(delay):
                    return False
        finally:
            self.waiting_for = None

    def stop(self, timeout: float | None = None, force: bool = False) -> StopSummary:
        """Stop gracefully: readiness off, intake stops, in-flight work finishes within the budget.

        What remains after the budget is forced. Returns (and logs) what finished, was forced
        and stayed queued.
        """
        with self._lifecycle:
            if self._state not in ("starting", "running"):
                return self.last_stop or StopSummary()
            budget = float(self.settings.get("platform.shutdown_timeout", 30.0)) if timeout is None else float(timeout)
            # Readiness turns false first, so load balancers stop sending before intake stops.
            self._state = WorkerState.STOPPING.value
            logger.info("stopping: draining in-flight work for up to %gs%s", budget, " (forced)" if force else "")
            summary, lost = StopSummary(), {}
            try:
                summary = self._built().supervisor.stop(budget, force=force, force_event=self._force_requested)
                lost = self._count_queued(summary)
            finally:
                # Whatever could not be read, the stop completes: the summary is in place before
                # anyone can see the stopped state, and a later start is possible.
                self.last_stop = summary
                self._state = WorkerState.STOPPED.value
            logger.info("stopped: %s", summary)
            for name, left in lost.items():
                logger.warning("%d task(s) left in memory queue %r are lost when this process exits "
                               "(a redis backend keeps them: [platform.queues.%s] backend = \"redis\")",
                               left, name, name)
            return summary

    def _count_queued(self, summary: StopSummary) -> dict[str, int]:
        """Add what each queue still holds to `summary`; return the memory queues' counts, lost at exit."""
        lost = {}
        for name, queue in self._built().registry.queues.items():
            stats = queue_stats(queue)
            if "error" in stats:
                summary.unreadable.append(f"queue {name!r} ({stats['error']})")
                continue
            left = int(stats.get("depth") or 0) + int(stats.get("delayed") or 0)
            summary.queued += left
            if left and stats.get("backend") == "memory":
                lost[name] = left
        return lost

    def run(self) -> int:
        """Start, block until a stop is requested (signal or control plane), stop; return the exit code."""
        self._stop_requested.clear()
        self._force_requested.clear()
        # Handlers go in before the workers start, so a signal during start-up is a stop request,
        # not a KeyboardInterrupt in the middle of it.
        try:
            with stop_on_signals(lambda force: self.request_stop(force=force, timeout=self._stop_timeout)):
                self._start(keep_stop_requests=True)
                # A signal the kernel hands to another thread is only flagged there: Python runs the
                # handler on the main thread when it next runs bytecode, so this wait wakes now and then.
                while not self._stop_requested.wait(SIGNAL_CHECK_INTERVAL):
                    pass
                self.stop(timeout=self._stop_timeout, force=self._force_requested.is_set())
        finally:
            self.close()
        return 1 if self.failure else 0

    def request_stop(self, force: bool = False, timeout: float | None = None) -> None:
        """Ask `run()` to stop (from a signal handler or the control plane); returns at once."""
        self._stop_timeout = timeout
        if force:
            self._force_requested.set()
        self._stop_requested.set()

    def close(self) -> None:
        """Stop if running, then close the control plane, queues and trace transport."""
        self.stop()
        if self.heartbeat is not None:
            self.heartbeat.stop()
            self.heartbeat = None
        if self.control is not None:
            self.control.stop()
            self.control = None
        if self.supervisor is not None:
            self.supervisor.close()
        if self.registry is not None:
            _close_queues(self.registry)
        if self._actions is not None:
            self._actions.state.close()
        if self.cluster is not None:
            self.cluster.close()
        if self._database is not None:
            self._database.close()
        self.traces.close()

    def __enter__(self) -> RuntimeManager:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def reload(self) -> list[str]:
        """Re-read configuration; plugins' `configure` runs on the new settings. Returns changed keys."""
        # Bad `[platform.schedules]` values refuse the whole reload: the config's own check finds them.
        changed = self.config.reload(prepare=lambda settings: self.plugins.configure(settings, mark_failed=False))
        if self.scheduler is not None and self.registry is not None \
                and any(key.startswith(f"{SCHEDULE_PREFIX}.") for key in changed):
            self.scheduler.update(apply_overrides(self.registry.schedules, self.settings))
        return changed

    # -- readings --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """State, workers, queues, plugins and the last hour's tasks per minute as JSON-ready data."""
        workers = self.supervisor.statuses() if self.supervisor else []
        queues = {name: queue_stats(queue) for name, queue in (self.registry.queues.items() if self.registry else [])}
        # A worker on a paused queue says so (its state stays one of DESIGN's); the queues' own
        # readings above tell, so this costs no further trip to a broker.
        paused = [queue for name, queue in (self.registry.queues.items() if self.registry else [])
                  if queues[name].get("paused") is True]
        for worker, entry in zip(self.supervisor.workers if self.supervisor else [], workers, strict=True):
            entry["paused"] = any(worker.consumes() is queue for queue in paused)
        return {
            "state": self.state,
            "started_at": self.started_at,
            "failure": self.failure,
            "workers": workers,
            "queues": queues,
            "plugins": [info.to_dict() for info in self.plugins.infos],
            "throughput": (self.supervisor.throughput if self.supervisor else MinuteCounts()).series(),
        }

    def instance_record(self) -> dict[str, Any]:
        """What this instance tells the fleet in its heartbeat (`GET /instances` lists these)."""
        statuses = self.supervisor.statuses() if self.supervisor else []
        workers = self.supervisor.workers if self.supervisor else []
        total = sum(worker.capacity for worker in workers)
        busy = sum(int(status.get("in_flight") or 0) for status in statuses)
        owner = self.cluster.owner if self.cluster else ""
        return {
            "id": owner,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "version": __version__,
            "state": self.state,
            "started_at": None if self.started_at is None else _iso(self.started_at),
            "plugins": [info.name for info in self.plugins.infos if info.status == "loaded"],
            "workers": {"busy": min(busy, total), "total": total},
            "control_url": self.control.url if self.control is not None else None,
        }

    def components(self, patience: float | None = None) -> list[Component]:
        """Every health reading: workers, registered checks (see `HealthRegistry.read`), the trace transport."""
        readings = [Component(name, health, critical) for name, health, critical in
                    (self.supervisor.health() if self.supervisor else [])]
        readings.extend(self.health_registry.read(patience))
        tracing = self.traces.health()
        if tracing.status != HealthStatus.OK:
            readings.append(Component("tracing", tracing, False))
        return readings

    def health(self) -> dict[str, Any]:
        """Overall status (`ok`, `degraded`, `unhealthy`) and each component's reading."""
        components = self.components()
        overall = aggregate(components)
        if self.failure:
            overall = HealthStatus.UNHEALTHY
        return {"status": overall.value, "components": {c.name: c.to_dict() for c in components}}

    def ready(self) -> tuple[bool, str]:
        """Whether to send work here: started, not stopping, and every critical component ok."""
        if self._state != "running":
            return False, self.waiting_for or f"runtime is {self.state}"
        # A probe must answer quickly: a check still running after READY_PATIENCE counts as it was.
        for component in self.components(READY_PATIENCE):
            if component.critical and component.health.status != HealthStatus.OK:
                return False, f"{component.name} is {component.health.status.value}: {component.health.detail}"
        return True, "ready"

    def live(self) -> tuple[bool, str]:
        """Whether the process makes progress: no worker holds work beyond `platform.control.stuck_after`."""
        limit = float(self.settings.get("platform.control.stuck_after", 300.0))
        for worker in self.supervisor.workers if self.supervisor else []:
            stuck_for = worker.stuck_for()
            if stuck_for > limit:
                return False, f"worker {worker.name} has held a task for {stuck_for:.0f}s (limit {limit:g}s)"
        return True, "making progress"

    # -- internals -------------------------------------------------------------------------

    def _on_give_up(self, worker: Worker) -> None:
        if not worker.critical:
            return
        self.failure = f"critical worker {worker.name!r} could not be kept alive"
        logger.error("%s", self.failure)
        if self.settings.get("platform.supervisor.exit_on_critical_failure", True):
            self.request_stop()

    def _on_reload(self, settings: Any, changed: list[str]) -> None:
        from plba.logs import configure_from_settings

        self.services["settings"] = settings
        if any(key.startswith("log.") for key in changed):
            configure_from_settings(settings)
        logger.info("configuration reloaded: %d key(s) changed", len(changed))

    def _stop_at_exit(self) -> None:
        # At interpreter exit, tasks still in an in-memory queue would be lost for good: give the
        # workers the shutdown budget to drain them before the graceful stop.
        if self._state != "running":
            return
        deadline = time.monotonic() + float(self.settings.get("platform.shutdown_timeout", 30.0))
        for queue in self._built().registry.queues.values():
            queue.wait_empty(max(0.0, deadline - time.monotonic()))
        self.close()


def _close_queues(registry: Registry) -> None:
    for queue in registry.queues.values():
        try:
            queue.close()
        except Exception:  # noqa: BLE001 - one queue's failure to close must not keep the others open
            logger.exception("closing a queue failed")


def queue_stats(queue: Any) -> dict[str, Any]:
    """The queue's stats, or `{"error": ...}` saying why they cannot be read."""
    try:
        return queue.stats()
    except Exception as exc:  # noqa: BLE001 - a queue that cannot report says why instead
        return {"error": f"{type(exc).__name__}: {exc}"}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


def _restart_policy(settings: Any) -> RestartPolicy:
    return RestartPolicy(
        budget=int(settings.get("platform.supervisor.restart_budget", 5)),
        window=float(settings.get("platform.supervisor.restart_window", 60.0)),
        backoff=Backoff(base=float(settings.get("platform.supervisor.restart_backoff", 0.5)),
                        cap=float(settings.get("platform.supervisor.restart_backoff_max", 30.0))),
    )


def create_runtime(
    *modules: Any,
    config_path: str | os.PathLike | None = None,
    enable_http_control: bool = True,
    settings: Mapping[str, Any] | None = None,
) -> RuntimeManager:
    """A runtime for plugin objects given directly (no entry points), as tests and embedding use.

    `config_path` (TOML, YAML or JSON) is layered over `settings.toml` and friends in the current
    directory; `settings` is a dict layered over everything, handy in tests.
    """
    config = ConfigurationManager([config_path] if config_path else [], overrides=settings)
    plugins = PluginSet()
    for module in modules:
        info = plugins.add(module)
        if info.status != "loaded":
            raise PluginError(f"plugin {info.name!r} cannot be registered: {info.error}")
    return RuntimeManager(config, plugins, enable_http_control=enable_http_control)
