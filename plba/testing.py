"""pytest plugin for testing PLBA plugins in a real runtime: the `plba_runtime` fixture and waiting helpers.

pytest loads this module in every test run wherever plba is installed, so it imports only the
standard library and pytest at the top; the runtime (dynaconf, pluggy) loads when a fixture is used.
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from plba.runtime import RuntimeManager

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


def wait_until(condition: Callable[[], T], timeout: float = DEFAULT_TIMEOUT, message: str = "condition",
               interval: float = 0.01) -> T:
    """Call `condition` until it returns something truthy and return that; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {message}")
        time.sleep(interval)


def worker_status(runtime: RuntimeManager, name: str) -> dict[str, Any]:
    """The status of the worker called `name`: state, in_flight, processed, failed, last_error, restarts."""
    workers = runtime.status()["workers"]
    for status in workers:
        if status["name"] == name:
            return status
    raise KeyError(f"no worker named {name!r}; the runtime has {sorted(w['name'] for w in workers)}")


def health_of(runtime: RuntimeManager, name: str) -> dict[str, Any]:
    """The health reading of the component called `name` (a worker or a check): status, detail, critical."""
    components = runtime.health()["components"]
    if name not in components:
        raise KeyError(f"no health component named {name!r}; the runtime has {sorted(components)}")
    return components[name]


class RuntimeFactory:
    """Builds runtimes for one test and closes every one of them when the test ends.

    Each runtime reads only what the test gives it: no `settings.toml` from the working
    directory and no `PLBA_...` variables from the shell, so a test means the same everywhere.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.runtimes: list[RuntimeManager] = []

    def __call__(self, *plugins: Any, settings: Mapping[str, Any] | None = None, http: bool = False,
                 config_path: str | os.PathLike | None = None, start: bool = True) -> RuntimeManager:
        """A runtime running `plugins` (modules, objects or ApplicationModules) with `settings` layered on top.

        `http=True` also serves the control plane, on a free port unless `settings` picks one.
        `start=False` returns it unbuilt, for tests of `build()` or `run()` themselves.
        """
        from plba.config import ConfigurationManager
        from plba.errors import PluginError
        from plba.plugins import PluginSet
        from plba.runtime import RuntimeManager

        overrides = _merged({"platform": {"control": {"enabled": True, "port": 0}}} if http else {}, settings or {})
        config = ConfigurationManager([config_path] if config_path else [], root=self.root, environ={},
                                      overrides=overrides)
        plugin_set = PluginSet()
        for plugin in plugins:
            info = plugin_set.add(plugin)
            if info.status != "loaded":
                raise PluginError(f"plugin {info.name!r} cannot be registered: {info.error}")
        runtime = RuntimeManager(config, plugin_set, enable_http_control=http)
        # Registered before starting, so a runtime whose start fails half-way is still closed.
        self.runtimes.append(runtime)
        if start:
            runtime.start()
        return runtime

    def close(self) -> None:
        """Stop and close every runtime made, newest first."""
        while self.runtimes:
            self.runtimes.pop().close()


@pytest.fixture
def plba_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RuntimeFactory]:
    """Factory: `plba_runtime(*plugins, settings={...}, http=False)` gives a started runtime, closed after the test."""
    factory = RuntimeFactory(tmp_path_factory.mktemp("plba-config"))
    yield factory
    factory.close()


def _merged(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """`top` deep-merged over `base`, tables merged key by key."""
    result = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result
