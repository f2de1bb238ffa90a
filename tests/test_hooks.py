"""Each plugin hook in a real runtime (create_runtime), checked by its effect; one `test_hook_<name>` per hook."""

from __future__ import annotations

from typing import Any

import pytest
from dynaconf import Validator

from plba import QueueWorker, Task, create_runtime, hookimpl
from plba.contracts import WorkerHealth
from plba.errors import ConfigError
from plba.testing import wait_until


class Configurable:
    """Declares `demo.limit` (an int, 7 by default) and remembers each settings object it was given."""

    name = "demo"

    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl
    def configure(self, settings: Any) -> None:
        self.seen.append(settings)
        settings.validators.register(Validator("demo.limit", default=7, is_type_of=int, gte=0))


class Producer:
    """Publishes one task on its queue and adds a worker that records the payloads it handles."""

    name = "demo"

    def __init__(self) -> None:
        self.handled: list[Any] = []
        self.services: dict[str, Any] = {}

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        self.services = dict(registry.services)
        queue = registry.queue("demo")
        queue.publish(Task("demo.job", {"n": 1}))
        registry.add_worker(QueueWorker("demo.worker", queue, lambda task: self.handled.append(task.payload)))


class Checked:
    """Registers a non-critical check reading degraded and, optionally, a critical one reading unhealthy."""

    name = "demo"

    def __init__(self, critical_failure: bool = False) -> None:
        self.critical_failure = critical_failure

    @hookimpl
    def register_health(self, registry: Any) -> None:
        registry.add_health("demo.cache", lambda: WorkerHealth("degraded", "cold cache"), critical=False)
        if self.critical_failure:
            registry.add_health("demo.database", lambda: WorkerHealth("unhealthy", "disk full"))


def runtime_for(plugin: Any, **settings: Any) -> Any:
    """A runtime with only `plugin`, no control plane, and `settings` layered on top."""
    return create_runtime(plugin, enable_http_control=False, settings=settings or None)


def test_hook_configure() -> None:
    # Given a plugin whose configure hook declares a validator with a default
    plugin = Configurable()
    # When the runtime starts
    with runtime_for(plugin) as runtime:
        # Then configure got the runtime's settings, and the default applies to them
        assert plugin.seen == [runtime.settings]
        assert runtime.registry.settings.get("demo.limit") == 7
        # And when the configuration is reloaded, configure runs again on the new settings
        runtime.reload()
        assert len(plugin.seen) == 2
        assert plugin.seen[-1] is runtime.settings


def test_hook_configure_validators_refuse_bad_values_naming_the_key() -> None:
    # Given a value that breaks the plugin's validator
    runtime = runtime_for(Configurable(), demo={"limit": -1})
    # When the runtime starts, then it refuses with the key named
    with pytest.raises(ConfigError, match="demo.limit"):
        runtime.start()
    runtime.close()


def test_hook_register_workers() -> None:
    # Given a plugin that queues a task and adds a worker for its queue
    plugin = Producer()
    # When the runtime runs
    with runtime_for(plugin) as runtime:
        # Then the worker handles the task
        wait_until(lambda: plugin.handled, message="the task to be handled")
        assert plugin.handled == [{"n": 1}]
        # And the runtime reports the worker and the queue, and gave the plugin its services
        assert [worker["name"] for worker in runtime.status()["workers"]] == ["demo.worker"]
        assert "demo" in runtime.status()["queues"]
        assert plugin.services["traces"] is runtime.traces


def test_hook_register_health() -> None:
    # Given a plugin with a non-critical check reading degraded
    with runtime_for(Checked()) as runtime:
        # When health is read
        health = runtime.health()
        # Then the check is a component, and it degrades the whole without failing readiness
        assert health["components"]["demo.cache"] == {"status": "degraded", "detail": "cold cache", "critical": False}
        assert health["status"] == "degraded"
        assert runtime.ready()[0] is True


def test_hook_register_health_a_critical_failure_makes_the_runtime_unhealthy_and_not_ready() -> None:
    # Given a plugin whose critical check reads unhealthy
    with runtime_for(Checked(critical_failure=True)) as runtime:
        # When health and readiness are read
        health = runtime.health()
        ready, reason = runtime.ready()
        # Then both say so, naming the check
        assert health["status"] == "unhealthy"
        assert ready is False
        assert "demo.database" in reason
