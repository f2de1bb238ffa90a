"""Reading and acting through a control plane for the CLI: GET a listing as JSON or a table, POST an action."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from typing import Any

import typer

from plba.cli.common import KEY_WIDTH, NAME_WIDTH, key_column, new_table, reported_errors, short_column, text_column
from plba.cli.control_cmd import client_for


def path_of(*parts: str) -> str:
    """A control-plane path from `parts`, each quoted whole (a name may hold `/`)."""
    return "/" + "/".join(urllib.parse.quote(part, safe="") for part in parts)


def cells(*values: Any) -> list[str]:
    """Table cells from values that may hold brackets (errors, payload text): escaped, so never read as markup."""
    from rich.markup import escape

    return [escape("" if value is None else str(value)) for value in values]


def when(iso: Any) -> str:
    """An ISO 8601 time as `YYYY-MM-DD HH:MM:SS` (its offset dropped: UTC, or the zone a row names), for a table."""
    return str(iso or "")[:19].replace("T", " ")


def listing_table(title: str, columns: list[tuple[str, str]], rows: list[list[str]]) -> Any:
    """A table fitting 80 columns: `key` and `name` columns never cut (`name` folds sooner), `short` stay one line.

    `text` columns wrap at spaces; a `whole` one folds a word too long for it instead of cutting it.
    """
    table = new_table(title)
    for index, (header, kind) in enumerate(columns):
        values = [row[index] for row in rows]
        if kind in ("key", "name"):
            key_column(table, header, values, KEY_WIDTH if kind == "key" else NAME_WIDTH)
        elif kind == "short":
            short_column(table, header, values)
        else:
            text_column(table, header, "fold" if kind == "whole" else "ellipsis")
    for row in rows:
        table.add_row(*row)
    return table


def read_key(config: Any, url: str | None, token: str | None, path: str, key: str, as_json: bool) -> Any:
    """GET `path` and return its `key`; with `as_json`, print it as JSON instead and return None."""
    with reported_errors():
        client, _ = client_for(config, url, token)
        _, answer = client.get(path)
    data = answer.get(key) if isinstance(answer, dict) else None
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return None
    return data


def show_listing(config: Any, url: str | None, token: str | None, path: str, key: str, as_json: bool, *, title: str,
                 columns: list[tuple[str, str]], row: Callable[..., list[str]], empty: str | None = None) -> Any:
    """GET `path`'s `key` and print it as JSON, or as a table of one `row(item)` each (`row(name, item)` for a mapping).

    `empty` is said instead of an empty table, when given. Returns what the table showed (None for JSON).
    """
    data = read_key(config, url, token, path, key, as_json)
    if data is None:
        return None
    rows = [row(*item) for item in data.items()] if isinstance(data, dict) else [row(item) for item in data]
    if not rows and empty is not None:
        typer.echo(empty)
    else:
        console().print(listing_table(title, columns, rows))
    return data


def act(config: Any, url: str | None, token: str | None, path: str,
         body: dict[str, Any] | None = None) -> dict[str, Any]:
    """POST `body` to the action at `path`; its JSON answer (errors are one line and exit 2)."""
    with reported_errors():
        client, _ = client_for(config, url, token)
        _, answer = client.post(path, body)
    return answer if isinstance(answer, dict) else {}


def console() -> Any:
    """A rich console for the CLI's tables."""
    from rich.console import Console

    return Console()
