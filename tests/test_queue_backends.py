"""Queue backends are plugins: `plba.queues` entry points, the factory, a third-party backend by settings alone."""

from __future__ import annotations

import signal
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from plba.contracts import Task, TaskQueue
from plba.errors import ConfigError, PluginError, UnsupportedQueueOperation
from plba.queue import InMemoryTaskQueue, backends, open_queue
from tests.helpers import PlbaProcess, plba, plba_env, write_distribution

# A third party's backend: an in-memory queue that says when settings picked it.
ACME_QUEUE = '''
import sys

from plba.queue import InMemoryTaskQueue


class AcmeQueue(InMemoryTaskQueue):
    """A queue of the acme backend."""


def open_acme(name, table):
    sys.stdout.write(f"acme backend opened queue {name} with greeting {table.get('greeting')}\\n")
    sys.stdout.flush()
    return AcmeQueue(name=name)


def open_nothing(name, table):
    return object()
'''

BROKEN_QUEUE = '''
raise ImportError("the acme-broken backend needs a driver that is not installed")
'''


@pytest.fixture
def backend_site(plugin_site: Path) -> Path:
    """The core tests' plugin site plus a distribution registering three `plba.queues` backends."""
    write_distribution(plugin_site, "acme-queue", "2.0.0",
                       {"acme": "acme_queue:open_acme", "acme-nothing": "acme_queue:open_nothing",
                        "acme-broken": "acme_broken_queue:open"},
                       {"acme_queue": ACME_QUEUE, "acme_broken_queue": BROKEN_QUEUE}, group="plba.queues")
    return plugin_site


@pytest.fixture
def on_path(backend_site: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The backend site importable in this process, as if pip had installed it."""
    monkeypatch.syspath_prepend(str(backend_site))
    yield backend_site
    for module in ("acme_queue", "acme_broken_queue"):
        sys.modules.pop(module, None)


def test_plba_registers_memory_and_redis_as_entry_points() -> None:
    """Given plba installed, then its own metadata maps memory and redis to their factories in `plba.queues`."""
    registered = {entry.name: entry.value for entry in entry_points(group="plba.queues")}
    assert registered["memory"] == "plba.queue.memory:InMemoryTaskQueue.from_settings"
    assert registered["redis"] == "plba.queue.redis:RedisTaskQueue.from_settings"


def test_a_memory_queue_is_built_without_importing_redis() -> None:
    """Given a queue with no table, when it is opened, then it is in memory and redis-py was never imported."""
    code = ("import sys; from plba.queue import open_queue; q = open_queue('jobs', {}); "
            "print(type(q).__name__, 'redis' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["InMemoryTaskQueue", "False"]


def test_an_unknown_backend_is_a_configuration_error_listing_the_installed_ones() -> None:
    """Given backend = "kafka", then opening the queue raises one ConfigError line naming the key and the choices."""
    with pytest.raises(ConfigError) as raised:
        open_queue("orders", {"backend": "kafka"})
    assert raised.value.problems == [
        "platform.queues.orders.backend: unknown backend 'kafka' (installed: memory, postgres, redis)"]


def test_a_third_party_backend_is_listed_and_opened_by_its_name(on_path: Path) -> None:
    """Given a distribution registering `acme` in `plba.queues`, then the factory lists it and builds its queue."""
    assert {"memory", "redis", "acme"} <= set(backends())
    queue = open_queue("orders", {"backend": "acme", "greeting": "hi"})
    assert type(queue).__name__ == "AcmeQueue" and isinstance(queue, TaskQueue)


def test_a_backend_that_fails_to_import_is_a_plugin_error_naming_it(on_path: Path) -> None:
    """Given a backend whose module raises on import, then opening its queue is a PluginError naming both."""
    with pytest.raises(PluginError, match=r"queue backend 'acme-broken' \(acme_broken_queue:open\) failed to load: "
                                          r"ImportError: the acme-broken backend needs a driver"):
        open_queue("orders", {"backend": "acme-broken"})


def test_a_backend_factory_that_returns_no_queue_is_a_plugin_error(on_path: Path) -> None:
    """Given a factory returning something else than a TaskQueue, then the error says so instead of failing later."""
    with pytest.raises(PluginError, match=r"returned object, not a plba.contracts.TaskQueue"):
        open_queue("orders", {"backend": "acme-nothing"})


def test_a_third_party_backend_is_used_by_settings_alone(backend_site: Path, project: Path) -> None:
    """Given only `backend = "acme"` in settings.toml, when `plba run` runs the plugin, then its queue is acme's."""
    (project / "settings.toml").write_text('[platform.queues.acme]\nbackend = "acme"\ngreeting = "hello"\n')
    env = plba_env(backend_site, PLBA_PLATFORM__CONTROL__ENABLED="false", PLBA_LOAD_PLUGINS="acme")
    process = PlbaProcess("run", cwd=project, env=env)
    try:
        process.wait_for_output("acme backend opened queue acme with greeting hello")
        process.wait_for_output("handled {'n': 2}")
        process.signal(signal.SIGTERM)
        assert process.wait() == 0
    finally:
        process.kill()


def test_config_check_names_an_unknown_backend_in_one_line(backend_site: Path, project: Path) -> None:
    """Given a backend nobody installed, then `plba config check` exits 2 with one line listing the installed ones."""
    (project / "settings.toml").write_text('[platform.queues.acme]\nbackend = "akme"\n')
    env = plba_env(backend_site, PLBA_PLATFORM__CONTROL__ENABLED="false", PLBA_LOAD_PLUGINS="acme")
    result = plba("config", "check", cwd=project, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == ("error: platform.queues.acme.backend: unknown backend 'akme' "
                                     "(installed: acme, acme-broken, acme-nothing, memory, postgres, redis)")


class MinimalQueue(TaskQueue):
    """A backend with only the five required methods."""

    def publish(self, task: Task) -> None:
        """Accept and forget."""

    def consume(self, timeout: float | None = None) -> Task | None:
        """Nothing to give."""
        return None

    def ack(self, task: Task) -> None:
        """Nothing to settle."""

    def nack(self, task: Task, retry_delay: float | None = None) -> None:
        """Nothing to settle."""

    def stats(self) -> dict:
        """Always empty."""
        return {"backend": "minimal", "depth": 0, "in_flight": 0, "delayed": 0, "dead": 0, "paused": False}


@pytest.mark.parametrize("operation", [
    lambda q: q.list_dead(), lambda q: q.requeue(["a"]), lambda q: q.requeue_all(), lambda q: q.purge("dead"),
    lambda q: q.pause(), lambda q: q.resume()])
def test_operations_a_backend_lacks_raise_a_clear_error(operation) -> None:
    """Given a backend with only the required methods, then each operator action says the backend lacks it."""
    with pytest.raises(UnsupportedQueueOperation, match=r"not supported by the MinimalQueue queue backend"):
        operation(MinimalQueue())


def test_the_optional_capabilities_have_defaults() -> None:
    """Given only the required methods, then the retry policy is unset, and it is never paused or waited on."""
    queue = MinimalQueue()
    assert (queue.max_attempts, queue.retry_backoff) == (None, None)
    assert (queue.is_paused(), queue.wait_empty(0)) == (False, True)


def test_a_paused_memory_queue_is_not_waited_on_at_exit() -> None:
    """Given a paused in-memory queue holding a task, then wait_empty answers False at once, not after the budget."""
    queue = InMemoryTaskQueue()
    queue.publish(Task("t", 1))
    queue.pause()
    assert queue.wait_empty(3600) is False


BROKER_SETTINGS = pytest.mark.parametrize("read, extra", [
    ("plba.queue.redis_support:RedisQueueSettings", {}),
    ("plba.queue.postgres_settings:PostgresQueueSettings", {"url": "postgresql://db.example/app"}),
])


def _settings_class(read: str) -> type:
    import importlib

    module, name = read.split(":")
    return getattr(importlib.import_module(module), name)


@BROKER_SETTINGS
def test_the_broker_backends_read_their_shared_keys_alike(read: str, extra: dict) -> None:
    table = {**extra, "visibility_timeout": "7", "max_attempts": 3, "retry_delay": 0.5, "retry_delay_max": 9,
             "prefetch": 4, "socket_timeout": 2, "dead_max": 0}
    options = _settings_class(read).from_table("orders", table).queue_options()
    backoff = options.pop("retry_backoff")
    assert options == {"visibility_timeout": 7.0, "max_attempts": 3, "prefetch": 4, "socket_timeout": 2.0,
                       "dead_max": 0}
    assert (backoff.base, backoff.cap) == (0.5, 9.0)


@BROKER_SETTINGS
def test_the_broker_backends_refuse_a_boolean_or_a_too_small_number_naming_each_key(read: str, extra: dict) -> None:
    with pytest.raises(ConfigError) as error:
        _settings_class(read).from_table("orders", {**extra, "max_attempts": True, "prefetch": 0})
    assert error.value.problems == ["platform.queues.orders.max_attempts: expected a number, got True",
                                    "platform.queues.orders.prefetch: must be at least 1, got 0"]
