"""What every command shares: exit codes, the error console, and turning errors into one line."""

from __future__ import annotations

import contextlib
import enum
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

import typer

from plba.errors import PlbaError, ProblemsError, UsageError

if TYPE_CHECKING:
    from plba.plugins import PluginSet

# When the command line was loaded: `plba run` reports its start-up time from here.
LAUNCHED = time.monotonic()


class ExitCode(enum.IntEnum):
    """The exit codes of `plba` (see DESIGN.md)."""

    OK = 0
    RUNTIME_FAILED = 1
    USAGE = 2
    PLUGIN_FAILED = 3


class State:
    """Options given before the command (`plba --debug ...`)."""

    debug = False


def error_lines(exc: BaseException) -> list[str]:
    """The lines to print for an error: one per problem."""
    if isinstance(exc, ProblemsError):
        return list(exc.problems)
    return [str(exc) or type(exc).__name__]


def fail(message: str | list[str], code: int) -> NoReturn:
    """Print `error: ...` lines on stderr and exit with `code`."""
    for line in [message] if isinstance(message, str) else message:
        sys.stderr.write(f"error: {line}\n")
    raise typer.Exit(int(code))


@contextlib.contextmanager
def reported_errors() -> Iterator[None]:
    """Turn PLBA errors into their one-line messages and exit codes; tracebacks only with --debug."""
    try:
        yield
    except PlbaError as exc:
        if State.debug:
            raise
        fail(error_lines(exc), exc.exit_code)


def select_plugins(names: list[str] | None) -> PluginSet:
    """Discover the plugins named by `--plugin` (else `PLBA_LOAD_PLUGINS`, else all); others are disabled.

    UsageError when a name is not installed, listing the names that are.
    """
    from plba.plugins import PluginSet, selection_from_env

    selection = set(names) if names else selection_from_env()
    plugins = PluginSet()
    plugins.discover(selection)
    unknown = plugins.unknown(selection or ())
    if unknown:
        installed = ", ".join(sorted(info.name for info in plugins.infos)) or "none"
        missing = ", ".join(repr(name) for name in unknown)
        subject = f"plugin {missing} is" if len(unknown) == 1 else f"plugins {missing} are"
        raise UsageError(f"{subject} not installed (installed: {installed})")
    return plugins


# Identifiers (plugin, worker, queue names) are never cut: up to this width they keep one line, beyond it they fold.
KEY_WIDTH = 28
# The same, in a table with many columns (`name` columns): longer names fold sooner.
NAME_WIDTH = 20
# Short values (states, counts, versions) keep one line; beyond this width they are cut with an ellipsis.
SHORT_WIDTH = 12
# Free text takes the room left, wrapped at spaces; a word that does not fit is cut with an ellipsis.
TEXT_MIN_WIDTH = 8


def new_table(title: str) -> Any:
    """A table for an 80-column terminal: no borders or edge padding, two spaces between columns."""
    from rich import box
    from rich.table import Table

    return Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True,
                 title_justify="left", title_style="bold")


def _width(header: str, values: list[str], limit: int) -> int:
    return min(max([len(header), *(len(value) for value in values)]), limit)


def key_column(table: Any, header: str, values: list[str], limit: int = KEY_WIDTH) -> None:
    """Add a column for identifiers, as wide as the longest (up to `limit`, folded beyond): never cut."""
    table.add_column(header, width=_width(header, values, limit), overflow="fold")


def short_column(table: Any, header: str, values: list[str], justify: str = "left") -> None:
    """Add a column for short values, as wide as the longest (up to SHORT_WIDTH): one line, cut with an ellipsis."""
    table.add_column(header, width=_width(header, values, SHORT_WIDTH), no_wrap=True, overflow="ellipsis",
                     justify=justify)


def text_column(table: Any, header: str, overflow: str = "ellipsis") -> None:
    """Add a column for free text, taking the room the others leave, wrapped at spaces.

    A word longer than the column is cut with an ellipsis, or folded (`overflow="fold"`) where every character counts.
    """
    table.add_column(header, min_width=TEXT_MIN_WIDTH, ratio=1, overflow=overflow)


def print_problems(console: Any, problems: list[tuple[str, str]]) -> None:
    """Print each (name, problem) under a table, in full, wrapped with a hanging indent: errors are never cut."""
    from rich.padding import Padding
    from rich.text import Text

    for name, problem in problems:
        line = Text.assemble(("✗ ", "red"), (name, "bold"), f": {problem}")
        console.print(Padding(line, (0, 0, 0, 2)))
