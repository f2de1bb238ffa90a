"""PLBA: a runtime platform for Python business applications written as plugins."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plba.contracts import Settings, Task, TaskHandler
from plba.hookspecs import hookimpl
from plba.module import ApplicationModule

if TYPE_CHECKING:
    from plba.registry import RegistryScope
    from plba.runtime import RuntimeManager, create_runtime
    from plba.schedule.definition import Firing
    from plba.thread_worker import ThreadWorker
    from plba.worker import QueueWorker

__version__ = "0.1.0"

__all__ = [
    "ApplicationModule",
    "Firing",
    "QueueWorker",
    "RegistryScope",
    "RuntimeManager",
    "Settings",
    "Task",
    "TaskHandler",
    "ThreadWorker",
    "__version__",
    "create_runtime",
    "hookimpl",
]

# The runtime pulls in dynaconf; plugins import `plba` just for `hookimpl`, and `plba plugins list`
# must stay quick, so the heavy names load on first use.
_LAZY = {
    "RuntimeManager": "plba.runtime",
    "create_runtime": "plba.runtime",
    "QueueWorker": "plba.worker",
    "ThreadWorker": "plba.thread_worker",
    "Firing": "plba.schedule.definition",
    "RegistryScope": "plba.registry",
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'plba' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)
