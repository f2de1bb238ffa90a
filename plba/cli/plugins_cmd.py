"""`plba plugins ...`: what is installed and whether it loads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from plba.cli.common import reported_errors, select_plugins
from plba.cli.run_cmd import PluginOption

app = typer.Typer(help="Inspect installed plugins.", no_args_is_help=True)

STATUS_STYLE = {"loaded": "green", "failed": "bold red", "disabled": "dim"}


@app.command("list")
def list_plugins(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
    plugin: PluginOption = None,
) -> None:
    """One row per discovered plugin: name, distribution, version, hooks, status, error."""
    with reported_errors():
        infos = select_plugins(plugin).infos
    if as_json:
        typer.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="PLBA plugins")
    for column in ("name", "distribution", "version", "hooks", "status", "error"):
        table.add_column(column, overflow="fold")
    for info in infos:
        style = STATUS_STYLE.get(info.status, "")
        table.add_row(info.name, info.distribution or "-", info.version or "-", ", ".join(info.hooks) or "-",
                      f"[{style}]{info.status}[/]", info.error or "")
    console = Console()
    console.print(table if infos else "No plugins found in the 'plba.modules' entry-point group.")


@app.command("new")
def new_plugin(
    name: Annotated[str, typer.Argument(help="The plugin's name: package, entry point and settings section.")],
    path: Annotated[Path, typer.Option("--path", help="Directory to create the project in.")] = Path("."),
) -> None:
    """Create a pip-installable plugin project PATH/NAME with a worker, a health check, settings and tests."""
    from plba.scaffold import new_plugin as scaffold

    with reported_errors():
        project = scaffold(name, path)
    typer.echo(f"created {project}")
    typer.echo(f"next: cd {project} && pip install -e '.[test]' && pytest && plba run --plugin {name}")
