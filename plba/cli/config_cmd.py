"""`plba config ...`: the effective settings (secrets masked, with where each came from) and their validation."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from plba.cli.common import ExitCode, error_lines, fail, reported_errors, select_plugins
from plba.cli.run_cmd import ConfigOption, PluginOption

if TYPE_CHECKING:
    from pathlib import Path

    from plba.config import ConfigurationManager

app = typer.Typer(help="Show and check the effective configuration.", no_args_is_help=True)


def _configured(config: list[Path] | None, plugin: list[str] | None) -> tuple[ConfigurationManager, list[str]]:
    """The layers loaded and the selected plugins' `configure` run, so their validators (and defaults) apply."""
    from plba.config import ConfigurationManager
    from plba.schedule import override_problems

    manager = ConfigurationManager(config or [])
    manager.add_check(override_problems)
    plugins = select_plugins(plugin)
    plugins.configure(manager.settings)
    return manager, [info.name for info in plugins.infos]


def _warn(lines: list[str]) -> None:
    for line in lines:
        sys.stderr.write(f"warning: {line}\n")


@app.command("show")
def show(
    config: ConfigOption = None,
    plugin: PluginOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    origin: Annotated[bool, typer.Option("--origin", help="Add where each key came from: default, a file, "
                                                          "or env PLBA_...")] = False,
) -> None:
    """Print every setting in force, plugin defaults included, with secrets masked."""
    from plba.config import display_path, flatten
    from plba.errors import ConfigError

    with reported_errors():
        manager, plugin_names = _configured(config, plugin)
    problems: list[str] = []
    warnings: list[str] = []
    try:
        warnings = manager.validate(plugins=plugin_names)
    except ConfigError as exc:
        # What is in force is still shown: it is what one needs to see to fix the problems.
        problems = error_lines(exc)
    data = manager.masked()
    origins = manager.origins()
    if as_json:
        typer.echo(json.dumps({"settings": data, "origins": origins} if origin else data, indent=2, default=str))
    else:
        files = ", ".join(display_path(p) for p in manager.files()) or "none"
        typer.echo(f"# files (later wins, then PLBA_ variables): {files}")
        lines = [(f"{key} = {json.dumps(value, default=str)}", origins.get(key, "default"))
                 for key, value in flatten(data).items()]
        width = max((len(text) for text, _ in lines), default=0)
        for text, layer in lines:
            typer.echo(f"{text:<{width}}  # {layer}" if origin else text)
    _warn(warnings)
    if problems:
        fail(problems, ExitCode.USAGE)


@app.command("check")
def check(
    config: ConfigOption = None,
    plugin: PluginOption = None,
    strict: Annotated[bool, typer.Option("--strict", help="Treat unknown keys (likely typos) as errors.")] = False,
) -> None:
    """Validate the settings (platform and the selected plugins' validators); list every problem."""
    from plba.config import display_path

    with reported_errors():
        manager, plugin_names = _configured(config, plugin)
        warnings = manager.validate(strict=strict, plugins=plugin_names)
    _warn(warnings)
    files = ", ".join(display_path(p) for p in manager.files()) or "no files"
    typer.echo(f"configuration is valid ({files})")
