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
    """One row per discovered plugin: name, distribution, version, status, hooks; errors under the table."""
    with reported_errors():
        infos = select_plugins(plugin).infos
    if as_json:
        typer.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    from rich.console import Console

    from plba.cli.common import key_column, new_table, print_problems, short_column, text_column

    console = Console()
    if not infos:
        console.print("No plugins found in the 'plba.modules' entry-point group.")
        return
    # Errors go under the table, in full: in a column they would be cut or read one word a line.
    table = new_table("PLBA plugins")
    key_column(table, "name", [info.name for info in infos])
    key_column(table, "distribution", [info.distribution or "-" for info in infos])
    short_column(table, "version", [info.version or "-" for info in infos])
    short_column(table, "status", [info.status for info in infos])
    text_column(table, "hooks")
    for info in infos:
        style = STATUS_STYLE.get(info.status, "")
        table.add_row(info.name, info.distribution or "-", info.version or "-", f"[{style}]{info.status}[/]",
                      ", ".join(info.hooks) or "-")
    console.print(table)
    print_problems(console, [(info.label, info.error) for info in infos if info.error])


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
