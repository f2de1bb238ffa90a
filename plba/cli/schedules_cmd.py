"""`plba schedules list|run`: read and fire a running instance's schedules through its control plane."""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated, Any

import typer

from plba.cli.common import reported_errors
from plba.cli.control_cmd import TokenOption, UrlOption, client_for
from plba.cli.run_cmd import ConfigOption

app = typer.Typer(help="List a running instance's schedules, or fire one now.", no_args_is_help=True)


@app.command("list")
def list_schedules(
    config: ConfigOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the schedules as JSON.")] = False,
) -> None:
    """Show every schedule: timing, next and last run, last outcome, counters."""
    with reported_errors():
        client, _ = client_for(config, url, token)
        _, answer = client.get("/schedules")
    schedules = answer.get("schedules", []) if isinstance(answer, dict) else []
    if as_json:
        typer.echo(json.dumps(schedules, indent=2))
        return
    _print(schedules)


@app.command("run")
def run(
    name: Annotated[str, typer.Argument(help="The schedule's name, as `plba schedules list` shows it.")],
    config: ConfigOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
) -> None:
    """Fire schedule NAME once now, in the whole fleet."""
    with reported_errors():
        client, _ = client_for(config, url, token)
        _, answer = client.post(f"/actions/schedules/{urllib.parse.quote(name, safe='')}/run")
    typer.echo(f"schedule {name} fired for {answer.get('scheduled_at')}")


def _print(schedules: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    if not schedules:
        console.print("no schedules registered")
        return
    table = Table("schedule", "timing", "next run", "last run", "outcome", "runs", "skipped", "failures",
                  title="Schedules")
    for entry in schedules:
        timing = f"every {entry['every']:g}s" if entry.get("every") is not None else f"cron {entry.get('cron')}"
        table.add_row(str(entry.get("name")), f"{timing} ({entry.get('timezone')})",
                      str(entry.get("next_run") or "") if entry.get("enabled") else "disabled",
                      str(entry.get("last_run") or ""), str(entry.get("last_outcome") or ""), str(entry.get("runs")),
                      str(entry.get("skipped")), str(entry.get("failures")))
    console.print(table)
    for entry in schedules:
        if entry.get("last_error"):
            console.print(f"[red]{escape(entry['name'])}[/]: last error: {escape(entry['last_error'])}",
                          highlight=False)
