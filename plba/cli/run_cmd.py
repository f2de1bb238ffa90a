"""`plba run`: load settings and plugins, refuse broken ones, run until told to stop."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from plba.cli.common import ExitCode, State, fail, reported_errors

ConfigOption = Annotated[list[Path] | None, typer.Option(
    "--config", "-c", help="Extra settings file (TOML, YAML or JSON), layered over settings.toml; repeatable.")]
PluginOption = Annotated[list[str] | None, typer.Option(
    "--plugin", "-p", help="Load only this plugin (entry-point name); repeatable. Default: PLBA_LOAD_PLUGINS or all.")]


def run(
    config: ConfigOption = None,
    plugin: PluginOption = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="Do not start the HTTP control plane.")] = False,
) -> None:
    """Run the selected plugins in the foreground until SIGINT/SIGTERM or a stop action."""
    from plba.config import ConfigurationManager
    from plba.logs import configure_from_settings
    from plba.plugins import PluginSet, selection_from_env
    from plba.runtime import RuntimeManager

    with reported_errors():
        settings = ConfigurationManager(config or [])
        configure_from_settings(settings.settings, debug=State.debug)
        selection = set(plugin) if plugin else selection_from_env()
        plugins = PluginSet()
        plugins.discover(selection)
        unknown = plugins.unknown(selection or ())
        if unknown:
            fail([f"plugin {name!r} is not installed (no such entry point in 'plba.modules')" for name in unknown],
                 ExitCode.USAGE)
        broken = plugins.failed()
        if broken:
            fail([f"plugin {info.label} is broken: {info.error} "
                  f"(deselect it with --plugin or PLBA_LOAD_PLUGINS)" for info in broken], ExitCode.PLUGIN_FAILED)
        runtime = RuntimeManager(settings, plugins, enable_http_control=not no_http)
        runtime.build()
        if not runtime.supervisor.workers:
            logging.getLogger("plba").warning("no plugin registered a worker: the runtime will idle until stopped")
        code = runtime.run()
    if code:
        fail(runtime.failure or "the runtime failed", ExitCode.RUNTIME_FAILED)
