"""`plba status`, `plba stop` and `plba reload`: read and act through a running instance's control plane."""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import TYPE_CHECKING, Annotated, Any

import typer

from plba.cli.common import ExitCode, fail, reported_errors
from plba.cli.run_cmd import ConfigOption

if TYPE_CHECKING:
    from plba.control.client import ControlClient

UrlOption = Annotated[str | None, typer.Option(
    "--url", help="Control plane URL. Default: http://<platform.control.host>:<platform.control.port>.")]
TokenOption = Annotated[str | None, typer.Option(
    "--token", envvar="PLBA_TOKEN", show_envvar=True,
    help="Bearer token to send (a user's token from `plba tokens create`). Default: platform.control.token.")]
# After a stop is accepted, how much longer than the drain budget to wait for the instance to go away.
EXIT_MARGIN = 10.0
POLL_INTERVAL = 0.1


def status(
    config: ConfigOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status and health as JSON.")] = False,
) -> None:
    """Show a running instance's state, workers, queues and health."""
    with reported_errors():
        client, _ = client_for(config, url, token)
        _, state = client.get("/status")
        _, health = client.get("/health", ok=(200, 503))
    if as_json:
        typer.echo(json.dumps({**state, "health": health}, indent=2, default=str))
        return
    _print_status(client.url, state, health)


def stop(
    config: ConfigOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    force: Annotated[bool, typer.Option("--force", help="Do not drain: give in-flight tasks back at once.")] = False,
    timeout: Annotated[float | None, typer.Option(
        "--timeout", min=0, help="Drain budget in seconds. Default: the instance's platform.shutdown_timeout.")] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the instance has stopped.")] = True,
    instance: Annotated[str | None, typer.Option(
        "--instance", help="Stop another instance of the fleet (an id from `plba instances`) through this.")] = None,
) -> None:
    """Ask a running instance to stop gracefully (or at once with --force)."""
    with reported_errors():
        client, settings = client_for(config, url, token)
        budget = timeout if timeout is not None else float(settings.get("platform.shutdown_timeout", 30.0))
        if instance is not None:
            _stop_instance(client, instance, force, timeout, budget if wait else None)
            return
        client.post("/actions/stop", {"force": force, "timeout": timeout})
        typer.echo(f"stop requested at {client.url}{' (forced)' if force else ''}")
        if not wait:
            return
        if not _wait_gone(client, budget + EXIT_MARGIN):
            fail(f"{client.url} still answers {budget + EXIT_MARGIN:g}s after the stop was accepted", ExitCode.USAGE)
        typer.echo("stopped")


def reload(
    config: ConfigOption = None,
    url: UrlOption = None,
    token: TokenOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changed keys as JSON.")] = False,
) -> None:
    """Ask a running instance to re-read its configuration; print the keys that changed."""
    from plba.errors import ConfigError

    with reported_errors():
        client, _ = client_for(config, url, token)
        code, answer = client.post("/actions/reload", ok=(200, 422))
    if code == 422:
        # The instance keeps its settings: say why, one line per problem, as `plba config check` does.
        fail([f"{client.url}: {answer.get('error')}", *answer.get("problems", [])], ConfigError.exit_code)
    changed = answer.get("changed") or []
    if as_json:
        typer.echo(json.dumps({"changed": changed}, indent=2))
        return
    typer.echo(f"reloaded {client.url}: " + (f"{len(changed)} key(s) changed" if changed else "nothing changed"))
    for key in changed:
        typer.echo(f"  {key}")


def client_for(config: Any, url: str | None, token: str | None = None) -> tuple[ControlClient, Any]:
    """A client for the instance the settings describe (or `url`), sending `token` or the service token."""
    from plba.config import ConfigurationManager
    from plba.control import configured_token
    from plba.control.client import ControlClient

    settings = ConfigurationManager(config or []).settings
    if url is None:
        host = str(settings.get("platform.control.host", "127.0.0.1"))
        port = int(settings.get("platform.control.port", 8080))
        if port == 0:
            fail("platform.control.port is 0 (any free port): pass the instance's --url, which it logs at start",
                 ExitCode.USAGE)
        # An instance listening on every interface is reached through loopback.
        host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
        url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    return ControlClient(url, token or configured_token(settings)), settings


def _stop_instance(client: ControlClient, instance: str, force: bool, timeout: float | None,
                   budget: float | None) -> None:
    """Ask `instance` to stop through the cluster store; with a `budget`, wait until it has left the fleet."""
    from plba.errors import ControlPlaneError

    path = f"/actions/instances/{urllib.parse.quote(instance, safe='')}/stop"
    client.post(path, {"force": force, "timeout": timeout})
    typer.echo(f"stop requested for instance {instance}{' (forced)' if force else ''}")
    if budget is None:
        return
    deadline = time.monotonic() + budget + EXIT_MARGIN
    while time.monotonic() < deadline:
        try:
            _, answer = client.get("/instances")
        except ControlPlaneError:
            # The instance asked was the one answering (it stopped itself), or the fleet's last one.
            break
        if all(record.get("id") != instance for record in answer.get("instances", [])):
            break
        time.sleep(POLL_INTERVAL * 5)
    else:
        fail(f"instance {instance} is still listed {budget + EXIT_MARGIN:g}s after the stop was accepted",
             ExitCode.USAGE)
    typer.echo("stopped")


def _wait_gone(client: ControlClient, limit: float) -> bool:
    """Poll until the control plane stops answering (the instance exited) or reports `stopped`."""
    from plba.errors import ControlPlaneError

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            _, state = client.get("/status")
        except ControlPlaneError:
            return True
        if state.get("state") == "stopped":
            return True
        time.sleep(POLL_INTERVAL)
    return False


def _print_status(url: str, state: dict[str, Any], health: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.markup import escape

    from plba.cli.common import key_column, new_table, print_problems, short_column, text_column

    console = Console()
    colour = {"ok": "green", "degraded": "yellow", "unhealthy": "red"}.get(str(health.get("status")), "white")
    console.print(f"[bold]{escape(url)}[/]  state [bold]{state.get('state')}[/]  "
                  f"health [{colour}]{health.get('status')}[/]")
    if state.get("failure"):
        print_problems(console, [("failure", str(state["failure"]))])
    # Long texts (a worker's last error, a queue's outage) go under their table, in full.
    workers = state.get("workers", [])
    if workers:
        table = new_table("Workers")
        counts = {"in flight": "in_flight", "processed": "processed", "failed": "failed", "restarts": "restarts"}
        # An idle worker on a paused queue is idle because of the pause: say so.
        states = ["paused" if w.get("paused") and w.get("state") == "idle" else str(w.get("state")) for w in workers]
        key_column(table, "worker", [str(w.get("name")) for w in workers])
        short_column(table, "state", states)
        for header, key in counts.items():
            short_column(table, header, [str(w.get(key)) for w in workers], justify="right")
        for worker, shown in zip(workers, states, strict=True):
            table.add_row(str(worker.get("name")), shown, *(str(worker.get(key)) for key in counts.values()))
        console.print(table)
        print_problems(console, [(str(w.get("name")), str(w["last_error"])) for w in workers if w.get("last_error")])
    queues = state.get("queues", {})
    if queues:
        table = new_table("Queues")
        counts = {"depth": "depth", "in flight": "in_flight", "delayed": "delayed", "dead": "dead"}
        backends = {name: "unavailable" if "error" in stats else str(stats.get("backend", "-"))
                    for name, stats in queues.items()}
        key_column(table, "queue", list(queues))
        short_column(table, "backend", list(backends.values()))
        for header, key in counts.items():
            short_column(table, header, [str(stats.get(key, "-")) for stats in queues.values()], justify="right")
        for name, stats in queues.items():
            table.add_row(name, backends[name], *(str(stats.get(key, "-")) for key in counts.values()))
        console.print(table)
        print_problems(console, [(name, str(stats["error"])) for name, stats in queues.items() if "error" in stats])
    components = health.get("components", {})
    if components:
        table = new_table("Health")
        key_column(table, "component", list(components))
        short_column(table, "status", [str(reading.get("status")) for reading in components.values()])
        short_column(table, "critical", ["yes"])
        text_column(table, "detail")
        problems = []
        for name, reading in components.items():
            status, detail = str(reading.get("status")), str(reading.get("detail") or "")
            style = {"ok": "green", "degraded": "yellow", "unhealthy": "red"}.get(status, "")
            if status != "ok" and detail:
                # What is wrong is read in full under the table.
                problems.append((name, detail))
                detail = ""
            table.add_row(name, f"[{style}]{status}[/]" if style else status,
                          "yes" if reading.get("critical") else "no", escape(detail))
        console.print(table)
        print_problems(console, problems)
