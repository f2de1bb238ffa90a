"""Build the queue a plugin asks for by name, through the backend named in `[platform.queues.<name>]`.

Backends are plugins: the `plba.queues` entry-point group maps a backend name to a factory
`(name, table) -> TaskQueue`. plba registers `memory` and `redis` there itself; a factory's
module is imported only when a queue uses it, so a memory queue never imports redis-py.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from plba.contracts import TaskQueue
from plba.errors import ConfigError, PluginError

ENTRY_POINT_GROUP = "plba.queues"
DEFAULT_BACKEND = "memory"
# The same targets as plba's own entry points, for an environment whose installed metadata
# predates them (an editable install made before they existed): the built-ins always resolve.
BUILT_IN = {
    "memory": "plba.queue.memory:InMemoryTaskQueue.from_settings",
    "redis": "plba.queue.redis:RedisTaskQueue.from_settings",
}

QueueFactory = Callable[[str, Mapping[str, Any]], TaskQueue]


def backends() -> dict[str, EntryPoint]:
    """Every installed queue backend by name: the built-ins, then the `plba.queues` entry points."""
    found = {name: EntryPoint(name, target, ENTRY_POINT_GROUP) for name, target in BUILT_IN.items()}
    found.update((entry.name, entry) for entry in entry_points(group=ENTRY_POINT_GROUP))
    return found


def backend_of(table: Mapping[str, Any]) -> str:
    """The backend name a queue table asks for (`memory` when it names none)."""
    return str(table.get("backend", DEFAULT_BACKEND)).strip().lower()


def backend_problem(name: str, table: Mapping[str, Any]) -> str | None:
    """One line naming the key at fault when queue `name`'s backend is not installed, else None."""
    backend = backend_of(table)
    installed = backends()
    if backend in installed:
        return None
    return (f"platform.queues.{name}.backend: unknown backend {backend!r} "
            f"(installed: {', '.join(sorted(installed))})")


def open_queue(name: str, table: Mapping[str, Any]) -> TaskQueue:
    """The queue `name` as its settings table describes it, built by its backend's factory."""
    problem = backend_problem(name, table)
    if problem:
        raise ConfigError(problem)
    entry = backends()[backend_of(table)]
    try:
        factory: QueueFactory = entry.load()
    except Exception as exc:  # noqa: BLE001 - any import failure of a backend plugin is reported the same way
        raise PluginError(f"queue backend {entry.name!r} ({entry.value}) failed to load: "
                          f"{type(exc).__name__}: {exc}") from exc
    queue = factory(name, table)
    if not isinstance(queue, TaskQueue):
        raise PluginError(f"queue backend {entry.name!r} ({entry.value}) returned {type(queue).__name__}, "
                          "not a plba.contracts.TaskQueue")
    return queue


def build_queue(name: str, settings: Any) -> TaskQueue:
    """The queue named `name` as the settings describe it; in memory when its table is absent."""
    return open_queue(name, settings.get(f"platform.queues.{name}") or {})
