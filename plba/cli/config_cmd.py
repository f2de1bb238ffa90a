"""`plba config ...`: the merged settings (secrets masked) and their validation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from plba.cli.common import reported_errors
from plba.cli.run_cmd import ConfigOption

app = typer.Typer(help="Show and check the merged configuration.", no_args_is_help=True)


@app.command("show")
def show(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Print the merged settings with secrets masked, and the files they came from."""
    from plba.config import ConfigurationManager

    with reported_errors():
        manager = ConfigurationManager(config or [])
    data = manager.masked()
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return
    from rich.console import Console
    from rich.pretty import Pretty

    console = Console()
    console.print("[bold]files[/] (later wins, then PLBA_ variables): " +
                  (", ".join(str(p) for p in manager.files()) or "none"))
    console.print(Pretty(data, expand_all=True))


@app.command("check")
def check(config: ConfigOption = None) -> None:
    """Validate the settings (platform and every plugin's validators); list every problem."""
    from plba.config import ConfigurationManager
    from plba.plugins import PluginSet, selection_from_env
    from plba.runtime import RuntimeManager

    with reported_errors():
        manager = ConfigurationManager(config or [])
        plugins = PluginSet()
        plugins.discover(selection_from_env())
        RuntimeManager(manager, plugins, enable_http_control=False).configure_plugins(manager.settings)
        manager.validate()
    files = ", ".join(str(Path(p)) for p in manager.files()) or "no files"
    typer.echo(f"configuration is valid ({files})")


