"""`plba schedules list|run`: read and fire a running instance's schedules through its control plane."""

from __future__ import annotations

import urllib.parse
from typing import Annotated, Any

import typer

from plba.cli.common import reported_errors
from plba.cli.control_cmd import TokenOption, UrlOption, client_for
from plba.cli.listing import cells, console, show_listing
from plba.cli.run_cmd import ConfigOption

app = typer.Typer(help="List a running instance's schedules, or fire one now.", no_args_is_help=True)


@app.command("list")
def list_schedules(
    config: ConfigOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the schedules as JSON.")] = False,
) -> None:
    """Show every schedule: timing, next run, last outcome, runs and failures (last errors under the table)."""
    from rich.markup import escape

    columns = [("schedule", "name"), ("timing", "whole"), ("next run", "key"), ("last", "short"), ("runs", "short"),
               ("failed", "short")]
    shown = show_listing(config, url, token, "/schedules", "schedules", as_json, title="Schedules", columns=columns,
                         row=_row, empty="no schedules registered")
    for entry in shown or []:
        if entry.get("last_error"):
            console().print(f"[red]{escape(str(entry['name']))}[/]: last error: {escape(str(entry['last_error']))}",
                            highlight=False)


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


def _row(entry: dict[str, Any]) -> list[str]:
    """One schedule's cells; its next run in its own timezone, named by abbreviation (`--json` has the full name)."""
    timing = f"every {entry['every']:g}s" if entry.get("every") is not None else f"cron {entry.get('cron')}"
    return cells(entry.get("name"), timing, _local(entry) if entry.get("enabled") else "disabled",
                 entry.get("last_outcome"), entry.get("runs"), entry.get("failures"))


def _local(entry: dict[str, Any]) -> str:
    """`YYYY-MM-DD HH:MM:SS ZONE` for the entry's next run, in the zone the instance reported it in."""
    from datetime import datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if not entry.get("next_run"):
        return ""
    moment = datetime.fromisoformat(str(entry["next_run"]))
    try:
        moment = moment.astimezone(ZoneInfo(str(entry.get("timezone"))))
    except (ZoneInfoNotFoundError, ValueError):
        pass  # a zone this machine lacks: the offset the instance gave
    return f"{moment:%Y-%m-%d %H:%M:%S} {moment.tzname()}"
