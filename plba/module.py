"""ApplicationModule: the class-style way to write a plugin, adapted to the hooks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plba.hookspecs import hookimpl

if TYPE_CHECKING:
    from flask import Blueprint

    from plba.contracts import Settings
    from plba.registry import RegistryScope
    from plba.runtime import RuntimeManager


class ApplicationModule:
    """Base class for class-style plugins: set `name`, implement `register(registry)`.

    Optionally override `configure(settings)` and `register_health(registry)`; the runtime
    calls them through the same hooks as module-style plugins.
    """

    name: str = "application"

    def configure(self, settings: Settings) -> None:
        """Declare validators and read typed config; nothing by default."""

    def register(self, registry: RegistryScope) -> None:
        """Add workers, queues and services to `registry`."""
        raise NotImplementedError(f"{type(self).__name__} must implement register(registry)")

    def register_health(self, registry: RegistryScope) -> None:
        """Add health checks; nothing by default."""

    def register_routes(self, blueprint: Blueprint, runtime: RuntimeManager) -> None:
        """Add HTTP endpoints under `/plugins/<name>/`; nothing by default."""


class ModuleAdapter:
    """Presents an ApplicationModule to pluggy as a set of hook implementations."""

    def __init__(self, module: ApplicationModule) -> None:
        self.module = module

    @hookimpl
    def configure(self, settings: Any) -> None:
        """Forward to the module's `configure`."""
        self.module.configure(settings)

    @hookimpl
    def register_workers(self, registry: Any) -> None:
        """Forward to the module's `register`."""
        self.module.register(registry)

    @hookimpl
    def register_health(self, registry: Any) -> None:
        """Forward to the module's `register_health`."""
        self.module.register_health(registry)

    @hookimpl
    def register_routes(self, blueprint: Any, runtime: Any) -> None:
        """Forward to the module's `register_routes`."""
        self.module.register_routes(blueprint, runtime)


def plugin_name(plugin: Any) -> str:
    """The name a plugin object goes by: its `name`, else its module or class name."""
    name = getattr(plugin, "name", None)
    if isinstance(name, str) and name:
        return name
    return getattr(plugin, "__name__", None) or type(plugin).__name__


def as_hook_plugin(plugin: Any) -> Any:
    """What to register with pluggy: the adapter for ApplicationModules, the object itself otherwise."""
    if isinstance(plugin, ApplicationModule):
        return ModuleAdapter(plugin)
    if isinstance(plugin, type) and issubclass(plugin, ApplicationModule):
        return ModuleAdapter(plugin())
    return plugin
