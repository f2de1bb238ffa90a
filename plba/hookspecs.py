"""The hooks a PLBA plugin can implement (pluggy project `plba`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

# Imported for editors and type checkers only: `plba plugins list` loads this module and must stay quick.
if TYPE_CHECKING:
    from flask import Blueprint

    from plba.admin import Admin
    from plba.contracts import Settings
    from plba.registry import RegistryScope
    from plba.runtime import RuntimeManager

PROJECT = "plba"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def configure(settings: Settings) -> None:
    """Declare validators for the plugin's own settings section and read its typed config.

    Called once before registration and again after every configuration reload.
    """


@hookspec
def register_workers(registry: RegistryScope) -> None:
    """Add the plugin's workers, queues and schedules to `registry` (`add_worker`, `queue`, `add_queue`, `schedule`)."""


@hookspec
def register_health(registry: RegistryScope) -> None:
    """Add the plugin's health checks with `registry.add_health(name, check, critical=True)`."""


@hookspec
def register_routes(blueprint: Blueprint, runtime: RuntimeManager) -> None:
    """Add HTTP endpoints to `blueprint`, a Flask blueprint mounted at `/plugins/<name>/`."""



@hookspec
def register_admin(admin: Admin) -> None:
    """Add console pages and buttons: `admin.page(path, title, view, role)`, `admin.action(path, view, role)`."""
