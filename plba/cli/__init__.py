"""The `plba` command line."""

from __future__ import annotations

from typing import Annotated

import typer

from plba import __version__
from plba.cli import accounts_cmd, config_cmd, control_cmd, fleet_cmd, plugins_cmd, run_cmd, schedules_cmd, traces_cmd
from plba.cli.common import State

app = typer.Typer(
    name="plba",
    help="PLBA: run and inspect business applications written as plugins.",
    no_args_is_help=True,
    # `-h` for `--help` on every command: sub-commands inherit the context settings.
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"plba {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[bool, typer.Option("--version", callback=_show_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Log at DEBUG and show tracebacks.")] = False,
) -> None:
    """PLBA: run and inspect business applications written as plugins."""
    State.debug = debug


app.command("run")(run_cmd.run)
app.command("status")(control_cmd.status)
app.command("stop")(control_cmd.stop)
app.command("reload")(control_cmd.reload)
app.add_typer(plugins_cmd.app, name="plugins")
app.add_typer(config_cmd.app, name="config")
app.add_typer(traces_cmd.app, name="traces")
app.add_typer(accounts_cmd.users, name="users")
app.add_typer(accounts_cmd.tokens, name="tokens")
app.add_typer(schedules_cmd.app, name="schedules")
app.add_typer(fleet_cmd.queues_app, name="queues")
app.add_typer(fleet_cmd.loggers_app, name="loggers")
app.command("instances")(fleet_cmd.instances)
app.command("audit")(fleet_cmd.audit)
