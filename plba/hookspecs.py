"""The hooks a PLBA plugin can implement (pluggy project `plba`)."""

from __future__ import annotations

from typing import Any

import pluggy

PROJECT = "plba"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def configure(settings: Any) -> None:
    """Declare validators for the plugin's own settings section and read its typed config.

    Called once before registration and again after every configuration reload.
    """


@hookspec
def register_workers(registry: Any) -> None:
    """Add the plugin's workers and queues to `registry` (`add_worker`, `queue`, `add_queue`)."""


@hookspec
def register_health(registry: Any) -> None:
    """Add the plugin's health checks with `registry.add_health(name, check, critical=True)`."""


@hookspec
def register_routes(blueprint: Any, runtime: Any) -> None:
    """Add HTTP endpoints to `blueprint`, a Flask blueprint mounted at `/plugins/<name>/`."""

