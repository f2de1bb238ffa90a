"""`plba queues`, `plba instances`, `plba loggers` and `plba audit`: operate a fleet through a control plane."""

from __future__ import annotations

import json
import urllib.parse
from typing import Annotated, Any

import typer

from plba.cli.common import ExitCode, fail, new_table, reported_errors
from plba.cli.control_cmd import UrlOption, client_for
from plba.cli.run_cmd import ConfigOption

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
QueueArgument = Annotated[str, typer.Argument(help="The queue's name, as `plba queues list` shows it.")]

queues_app = typer.Typer(help="Read queues and dead letters; requeue, purge, pause and resume.", no_args_is_help=True)
loggers_app = typer.Typer(help="Read log levels, or set one for a while.", invoke_without_command=True)


def _path(*parts: str) -> str:
    return "/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)


def _cells(*values: Any) -> list[str]:
    """Table cells from values that may hold brackets (errors, payload text): escaped, so never read as markup."""
    from rich.markup import escape

    return [escape("" if value is None else str(value)) for value in values]


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# -- queues ------------------------------------------------------------------------------------


@queues_app.command("list")
def queues_list(config: ConfigOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Every queue: backend, depth, in flight, delayed, dead, paused."""
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.get("/queues")
    queues = answer.get("queues", {})
    if as_json:
        _print_json(queues)
        return
    table = new_table("Queues")
    for header in ("queue", "backend", "depth", "in flight", "delayed", "dead", "paused"):
        table.add_column(header, overflow="fold")
    for name, stats in queues.items():
        if "error" in stats:
            table.add_row(*_cells(name, stats["error"], "", "", "", "", ""))
            continue
        table.add_row(*_cells(name, *(stats.get(key) for key in ("backend", "depth", "in_flight", "delayed", "dead")),
                              "paused" if stats.get("paused") else "no"))
    _console().print(table if queues else "no queues")


@queues_app.command("dead")
def queues_dead(
    queue: QueueArgument,
    config: ConfigOption = None,
    url: UrlOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Dead tasks to show, oldest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The dead tasks of QUEUE, oldest first: id, name, attempts, error, time of death (payloads in --json)."""
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.get(f"{_path('queues', queue, 'dead')}?limit={limit}")
    tasks = answer.get("tasks", [])
    if as_json:
        _print_json(tasks)
        return
    if not tasks:
        typer.echo(f"no dead tasks in {queue}")
        return
    table = new_table(f"Dead tasks in {queue}")
    for header in ("id", "name", "attempts", "dead at", "error"):
        table.add_column(header, overflow="fold")
    for task in tasks:
        table.add_row(*_cells(*(task.get(key) for key in ("id", "name", "attempts", "dead_at", "error"))))
    _console().print(table)


@queues_app.command("requeue")
def queues_requeue(
    queue: QueueArgument,
    ids: Annotated[list[str] | None, typer.Option("--id", help="A dead task's id (repeatable).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Move every dead task back.")] = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Move dead tasks of QUEUE back to work, attempts reset: the --id ones, or --all."""
    if bool(ids) == everything:
        fail("give --id ID (repeatable) or --all, not both and not neither", ExitCode.USAGE)
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.post(_path("actions", "queues", queue, "requeue"), {"all": True} if everything
                                else {"ids": list(ids or [])})
    typer.echo(f"moved {answer.get('moved')} dead task(s) back to {queue}")
    if answer.get("unknown"):
        typer.echo(f"not dead any more (moved by someone else): {', '.join(answer['unknown'])}")


@queues_app.command("purge")
def queues_purge(
    queue: QueueArgument,
    dead: Annotated[bool, typer.Option("--dead", help="Delete every dead task.")] = False,
    ready: Annotated[bool, typer.Option("--ready", help="Delete every task waiting to be consumed.")] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: purged tasks are gone for good.")] = False,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Delete every dead (--dead) or ready (--ready) task of QUEUE; needs --yes."""
    if dead == ready:
        fail("give --dead or --ready (one of them)", ExitCode.USAGE)
    if not yes:
        fail(f"purging deletes the {'dead' if dead else 'ready'} tasks of {queue} for good: add --yes", ExitCode.USAGE)
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.post(_path("actions", "queues", queue, "purge"), {"what": "dead" if dead else "ready"})
    typer.echo(f"removed {answer.get('removed')} task(s) from {queue}")


@queues_app.command("pause")
def queues_pause(queue: QueueArgument, config: ConfigOption = None, url: UrlOption = None) -> None:
    """Stop consumers in every instance from leasing from QUEUE."""
    with reported_errors():
        client, _ = client_for(config, url)
        client.post(_path("actions", "queues", queue, "pause"))
    typer.echo(f"{queue} paused")


@queues_app.command("resume")
def queues_resume(queue: QueueArgument, config: ConfigOption = None, url: UrlOption = None) -> None:
    """Let consumers in every instance lease from QUEUE again."""
    with reported_errors():
        client, _ = client_for(config, url)
        client.post(_path("actions", "queues", queue, "resume"))
    typer.echo(f"{queue} resumed")


# -- instances ---------------------------------------------------------------------------------


def instances(config: ConfigOption = None, url: UrlOption = None, as_json: JsonOption = False) -> None:
    """Every live instance sharing platform.cluster.url (just the one asked without it)."""
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.get("/instances")
    listed = answer.get("instances", [])
    if as_json:
        _print_json(listed)
        return
    table = new_table("Instances")
    for header in ("id", "state", "version", "started", "last seen", "busy/total", "control url"):
        table.add_column(header, overflow="fold")
    for record in listed:
        workers = record.get("workers") or {}
        table.add_row(*_cells(*(record.get(key) for key in ("id", "state", "version", "started_at", "last_seen")),
                              f"{workers.get('busy', 0)}/{workers.get('total', 0)}", record.get("control_url")))
    _console().print(table)


# -- loggers -----------------------------------------------------------------------------------


@loggers_app.callback()
def loggers_list(ctx: typer.Context, config: ConfigOption = None, url: UrlOption = None,
                 as_json: JsonOption = False) -> None:
    """The platform's and plugins' loggers with their levels (`plba loggers set` changes one)."""
    if ctx.invoked_subcommand is not None:
        return
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.get("/loggers")
    levels = answer.get("loggers", {})
    if as_json:
        _print_json(levels)
        return
    table = new_table("Loggers")
    for header in ("logger", "level", "in effect", "reverts at", "to"):
        table.add_column(header, overflow="fold")
    for name, entry in levels.items():
        table.add_row(*_cells(name, entry.get("level") or "-", entry.get("effective"), entry.get("revert_at"),
                              entry.get("revert_to")))
    _console().print(table)


@loggers_app.command("set")
def loggers_set(
    logger: Annotated[str, typer.Argument(help="`root`, `plba`, a plugin's name, or a logger below one.")],
    level: Annotated[str, typer.Argument(help="DEBUG, INFO, WARNING, ERROR or CRITICAL.")],
    for_seconds: Annotated[float | None, typer.Option(
        "--for", min=1, help="Seconds after which the old level returns by itself.")] = None,
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Set LOGGER to LEVEL now (for --for SECONDS only, when given)."""
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.post("/actions/loggers", {"logger": logger, "level": level, "revert_after": for_seconds})
    until = f" until {answer['revert_at']}, then back to {answer.get('previous') or 'inherited'}" \
        if answer.get("revert_at") else ""
    typer.echo(f"{answer.get('logger')} set to {answer.get('level')}{until}")


# -- audit -------------------------------------------------------------------------------------


def audit(
    config: ConfigOption = None,
    url: UrlOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Events to show, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The latest audit events: every action, allowed or refused, with its actor and outcome."""
    with reported_errors():
        client, _ = client_for(config, url)
        _, answer = client.get(f"/audit?limit={limit}")
    events = answer.get("events", [])
    if as_json:
        _print_json(events)
        return
    table = new_table("Audit")
    for header in ("at", "actor", "action", "target", "outcome", "from", "detail"):
        table.add_column(header, overflow="fold")
    for event in events:
        table.add_row(*_cells(*(event.get(key) for key in ("at", "actor", "action", "target", "outcome",
                                                            "remote_addr", "detail"))))
    _console().print(table if events else "no audit events yet")


def _console() -> Any:
    from rich.console import Console

    return Console()
