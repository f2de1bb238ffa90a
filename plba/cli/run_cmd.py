"""`plba run`: load settings and plugins, refuse broken ones, run until told to stop."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from plba.cli.common import LAUNCHED, ExitCode, State, fail, reported_errors, select_plugins

if TYPE_CHECKING:
    from plba.runtime import RuntimeManager

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
    from plba.runtime import RuntimeManager

    with reported_errors():
        settings = ConfigurationManager(config or [])
        configure_from_settings(settings.settings, debug=State.debug)
        plugins = select_plugins(plugin)
        broken = plugins.failed()
        if broken:
            fail([f"plugin {info.label} is broken: {info.error} "
                  f"(deselect it with --plugin or PLBA_LOAD_PLUGINS)" for info in broken], ExitCode.PLUGIN_FAILED)
        runtime = RuntimeManager(settings, plugins, enable_http_control=not no_http)
        runtime.build()
        if runtime.supervisor is None or not runtime.supervisor.workers:
            logging.getLogger("plba").warning("no plugin registered a worker: the runtime will idle until stopped")
        runtime.announce = _print_banner
        code = runtime.run()
    if code:
        fail(runtime.failure or "the runtime failed", ExitCode.RUNTIME_FAILED)


def banner(runtime: RuntimeManager) -> list[str]:
    """What `plba run` says before the work begins: version, plugins, workers, queues, control plane, start-up time."""
    from plba import __version__
    from plba.runtime import queue_stats

    loaded = [info for info in runtime.plugins.infos if info.status == "loaded"]
    plugins = [f"{info.name} {info.version or ''}".rstrip() for info in loaded]
    workers = [f"{worker.name} ×{worker.capacity}"
               for worker in (runtime.supervisor.workers if runtime.supervisor else [])]
    queues = [f"{name} ({queue_stats(queue).get('backend', 'unavailable')})"
              for name, queue in (runtime.registry.queues.items() if runtime.registry else [])]
    control = runtime.control.url if runtime.control is not None else "off"
    return [
        f"plba {__version__} ready in {time.monotonic() - LAUNCHED:.2f}s (Ctrl-C stops, twice forces)",
        f"  plugins  {', '.join(plugins) or 'none'}",
        f"  workers  {', '.join(workers) or 'none'}",
        f"  queues   {', '.join(queues) or 'none'}",
        f"  control  {control}",
    ]


def _print_banner(runtime: RuntimeManager) -> None:
    # Printed once the control plane listens (so its URL is the real port) and before any worker
    # starts, so it comes before the first work is logged. In JSON logs it is one record, like every line.
    lines = banner(runtime)
    if str(runtime.settings.get("log.format", "auto")).lower() == "json":
        logging.getLogger("plba").info("; ".join(" ".join(line.split()) for line in lines))
        return
    sys.stderr.write("\n".join(lines) + "\n")
    sys.stderr.flush()
