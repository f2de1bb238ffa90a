"""`plba queues`, `plba instances`, `plba loggers` and `plba audit`: operate a fleet through a control plane."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from plba.cli.common import ExitCode, fail
from plba.cli.control_cmd import TokenOption, UrlOption
from plba.cli.listing import act, cells, path_of, show_listing, when
from plba.cli.run_cmd import ConfigOption

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
QueueArgument = Annotated[str, typer.Argument(help="The queue's name, as `plba queues list` shows it.")]

queues_app = typer.Typer(help="Read queues and dead letters; requeue, purge, pause and resume.", no_args_is_help=True)
loggers_app = typer.Typer(help="Read log levels, or set one for a while.", invoke_without_command=True)


# -- queues ------------------------------------------------------------------------------------


@queues_app.command("list")
def queues_list(config: ConfigOption = None, url: UrlOption = None, token: TokenOption = None,
                as_json: JsonOption = False) -> None:
    """Every queue: backend, depth, in flight, delayed, dead, paused."""
    def row(name: str, stats: dict[str, Any]) -> list[str]:
        if "error" in stats:
            return cells(name, stats["error"], "", "", "", "", "")
        return cells(name, *(stats.get(key) for key in ("backend", "depth", "in_flight", "delayed", "dead")),
                     "paused" if stats.get("paused") else "no")

    columns = [("queue", "key"), ("backend", "text"), *((header, "short") for header in
                                                        ("depth", "in flight", "delayed", "dead", "paused"))]
    show_listing(config, url, token, "/queues", "queues", as_json, title="Queues", columns=columns, row=row,
                 empty="no queues")


@queues_app.command("dead")
def queues_dead(
    queue: QueueArgument,
    config: ConfigOption = None,
    url: UrlOption = None, token: TokenOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Dead tasks to show, oldest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """The dead tasks of QUEUE, oldest first: id, name, attempts, error, time of death (payloads in --json)."""
    show_listing(config, url, token, f"{path_of('queues', queue, 'dead')}?limit={limit}", "tasks", as_json,
                 title=f"Dead tasks in {queue}", empty=f"no dead tasks in {queue}",
                 columns=[("id", "key"), ("name", "key"), ("attempts", "short"), ("dead at", "key"),
                          ("error", "text")],
                 row=lambda task: cells(task.get("id"), task.get("name"), task.get("attempts"),
                                        when(task.get("dead_at")), task.get("error")))


@queues_app.command("requeue")
def queues_requeue(
    queue: QueueArgument,
    ids: Annotated[list[str] | None, typer.Option("--id", help="A dead task's id (repeatable).")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Move every dead task back.")] = False,
    config: ConfigOption = None,
    url: UrlOption = None, token: TokenOption = None,
) -> None:
    """Move dead tasks of QUEUE back to work, attempts reset: the --id ones, or --all."""
    if bool(ids) == everything:
        fail("give --id ID (repeatable) or --all, not both and not neither", ExitCode.USAGE)
    answer = act(config, url, token, path_of("actions", "queues", queue, "requeue"),
                 {"all": True} if everything else {"ids": list(ids or [])})
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
    url: UrlOption = None, token: TokenOption = None,
) -> None:
    """Delete every dead (--dead) or ready (--ready) task of QUEUE; needs --yes."""
    if dead == ready:
        fail("give --dead or --ready (one of them)", ExitCode.USAGE)
    if not yes:
        fail(f"purging deletes the {'dead' if dead else 'ready'} tasks of {queue} for good: add --yes", ExitCode.USAGE)
    answer = act(config, url, token, path_of("actions", "queues", queue, "purge"),
                 {"what": "dead" if dead else "ready"})
    typer.echo(f"removed {answer.get('removed')} task(s) from {queue}")


@queues_app.command("pause")
def queues_pause(queue: QueueArgument, config: ConfigOption = None, url: UrlOption = None,
                 token: TokenOption = None) -> None:
    """Stop consumers in every instance from leasing from QUEUE."""
    act(config, url, token, path_of("actions", "queues", queue, "pause"))
    typer.echo(f"{queue} paused")


@queues_app.command("resume")
def queues_resume(queue: QueueArgument, config: ConfigOption = None, url: UrlOption = None,
                  token: TokenOption = None) -> None:
    """Let consumers in every instance lease from QUEUE again."""
    act(config, url, token, path_of("actions", "queues", queue, "resume"))
    typer.echo(f"{queue} resumed")


# -- instances ---------------------------------------------------------------------------------


def instances(config: ConfigOption = None, url: UrlOption = None, token: TokenOption = None,
              as_json: JsonOption = False) -> None:
    """Every live instance sharing platform.cluster.url (just the one asked without it)."""
    def row(record: dict[str, Any]) -> list[str]:
        workers = record.get("workers") or {}
        return cells(record.get("id"), record.get("state"), record.get("version"), when(record.get("started_at")),
                     f"{workers.get('busy', 0)}/{workers.get('total', 0)}", record.get("control_url"))

    columns = [("id", "key"), ("state", "short"), ("version", "short"), ("started", "key"), ("busy", "short"),
               ("control url", "text")]
    show_listing(config, url, token, "/instances", "instances", as_json, title="Instances", columns=columns, row=row)


# -- loggers -----------------------------------------------------------------------------------


@loggers_app.callback()
def loggers_list(ctx: typer.Context, config: ConfigOption = None, url: UrlOption = None, token: TokenOption = None,
                 as_json: JsonOption = False) -> None:
    """The platform's and plugins' loggers with their levels (`plba loggers set` changes one)."""
    if ctx.invoked_subcommand is not None:
        return
    show_listing(config, url, token, "/loggers", "loggers", as_json, title="Loggers",
                 columns=[("logger", "key"), ("level", "short"), ("in effect", "short"), ("reverts at", "key"),
                          ("to", "short")],
                 row=lambda name, entry: cells(name, entry.get("level") or "-", entry.get("effective"),
                                               when(entry.get("revert_at")), entry.get("revert_to")))


@loggers_app.command("set")
def loggers_set(
    logger: Annotated[str, typer.Argument(help="`root`, `plba`, a plugin's name, or a logger below one.")],
    level: Annotated[str, typer.Argument(help="DEBUG, INFO, WARNING, ERROR or CRITICAL.")],
    for_seconds: Annotated[float | None, typer.Option(
        "--for", min=1, help="Seconds after which the old level returns by itself.")] = None,
    config: ConfigOption = None,
    url: UrlOption = None, token: TokenOption = None,
) -> None:
    """Set LOGGER to LEVEL now (for --for SECONDS only, when given)."""
    body = {"logger": logger, "level": level, "revert_after": for_seconds}
    answer = act(config, url, token, "/actions/loggers", body)
    until = f" until {answer['revert_at']}, then back to {answer.get('previous') or 'inherited'}" \
        if answer.get("revert_at") else ""
    typer.echo(f"{answer.get('logger')} set to {answer.get('level')}{until}")


# -- audit -------------------------------------------------------------------------------------


def audit(
    config: ConfigOption = None,
    url: UrlOption = None, token: TokenOption = None,
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000, help="Events to show, newest first.")] = 50,
    as_json: JsonOption = False,
) -> None:
    """The latest audit events: every action, allowed or refused, with its actor and outcome."""
    show_listing(config, url, token, f"/audit?limit={limit}", "events", as_json, title="Audit",
                 empty="no audit events yet",
                 columns=[("at", "key"), ("actor", "key"), ("action", "key"), ("target", "key"), ("outcome", "short"),
                          ("detail", "text")],
                 row=lambda event: cells(when(event.get("at")), event.get("actor"), event.get("action"),
                                         event.get("target"), event.get("outcome"), event.get("detail")))
